//! Link settings of the `train` and `cuda` features (shared/reference/tch-setup.md §2, §2b):
//! libtorch's directory as an rpath, so the binary and tests run without LD_LIBRARY_PATH, and with
//! `cuda`, libtorch_cuda kept in the binary's NEEDED list (rustc links with --as-needed, which would
//! drop it and leave the CUDA backend out of the process).
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if std::env::var_os("CARGO_FEATURE_TRAIN").is_some()
        && let Ok(dir) = std::env::var("LIBTORCH")
    {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}/lib");
    }
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        println!("cargo:rustc-link-arg-bins=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
