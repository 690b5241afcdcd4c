fn main() -> std::process::ExitCode {
    return_large_buffers_to_the_system();
    shop::cli::main()
}

/// Password hashing (argon2id, `SHOP_AUTH__ARGON2_MEMORY_KIB`, 19 MiB by default) allocates one
/// large buffer per hash and frees it at once. glibc's allocator maps such buffers and unmaps
/// them on free, but the first unmap raises its threshold to the buffer's size, after which the
/// buffers come from the per-thread heaps and their pages stay resident: the first start's 128
/// seed accounts left ≈400 MB behind (docs/performance.md). A fixed threshold (glibc's own
/// default, 128 KiB, without the adjustment) keeps every large buffer mapped and unmapped.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_buffers_to_the_system() {
    // SAFETY: mallopt only changes allocator parameters; it is called before any thread starts.
    let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
    debug_assert_eq!(ok, 1, "mallopt(M_MMAP_THRESHOLD)");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_buffers_to_the_system() {}
