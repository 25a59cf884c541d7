//! Embeds libtorch's directory as an rpath in everything this crate links (its unit and
//! integration tests, examples, benches), so they run without LD_LIBRARY_PATH: torch-sys embeds
//! none (shared/reference/tch-setup.md §2). kis-agent's build.rs does the same for its binary.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(dir) = std::env::var("LIBTORCH") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}/lib");
    }
}
