//! Exports the linker's constructor runner from the wasm module.
//!
//! cubecl registers its IR dialects with `inventory`, i.e. static constructors. When a wasm
//! module does not export `__wasm_call_ctors` (and nothing in it calls it), wasm-ld treats the
//! module as a command and wraps *every* export in a call to it — and wasm-bindgen's glue calls
//! exports (`__externref_table_alloc`, closures) for each WebGPU object the runtime creates. In
//! Chromium that re-ran every registration at each kernel launch: ≈ 4 ms per dispatch, 94 % of a
//! WebGPU Langevin step of the 4×4 multigrid net. Exported, the wrappers go away and `ebm.js`
//! runs the constructors once after instantiation.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=--export=__wasm_call_ctors");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
