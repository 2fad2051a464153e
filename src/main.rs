fn main() -> std::process::ExitCode {
    imlrecover::run()
}

/// EL6 build only (glibc 2.12): Rust's std looks up `getauxval` (GLIBC_2.16)
/// for its stack guard; answering 0 ("unknown") makes it fall back.
#[cfg(feature = "el6-getauxval-shim")]
#[no_mangle]
pub extern "C" fn getauxval(_type: std::ffi::c_ulong) -> std::ffi::c_ulong {
    0
}
