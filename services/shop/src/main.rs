fn main() -> std::process::ExitCode {
    shop::cli::main()
}
