//! One name for "io_uring is compiled in": `cfg(ferry_uring)` on Linux unless the
//! build asks for the portable paths with `RUSTFLAGS="--cfg ferry_force_fallback"`
//! (Cargo hands the target's cfgs, RUSTFLAGS' included, to build scripts as
//! `CARGO_CFG_*`).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(ferry_uring)");
    println!("cargo::rerun-if-changed=build.rs");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let forced = std::env::var_os("CARGO_CFG_FERRY_FORCE_FALLBACK").is_some();
    if linux && !forced {
        println!("cargo::rustc-cfg=ferry_uring");
    }
}
