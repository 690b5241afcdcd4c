//! Prints the ShopPlatform CRD:
//! `cargo run -p shop-operator --bin crdgen > crds/shopplatforms.platform.shop.yaml`.

fn main() {
    print!("{}", shop_operator::crd_yaml());
}
