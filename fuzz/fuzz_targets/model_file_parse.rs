//! Parses arbitrary bytes as a model file; whatever parses must re-serialise and
//! round-trip to an equal value, byte-identically the second time.

#![no_main]

use libfuzzer_sys::fuzz_target;
use modelfile::{FormatError, ModelFile};

fuzz_target!(|data: &[u8]| {
    check(data);
    // Random mutations almost never keep the CRC-32 right, which would leave everything
    // behind the checksum unexplored: parse a copy with the checksum recomputed too.
    if data.len() >= 4 {
        let mut fixed = data.to_vec();
        let n = fixed.len() - 4;
        let crc = modelfile::crc32(&fixed[..n]);
        fixed[n..].copy_from_slice(&crc.to_le_bytes());
        check(&fixed);
    }
});

fn check(data: &[u8]) {
    let Ok(model) = ModelFile::from_bytes(data) else {
        return;
    };
    let bytes = match model.to_bytes() {
        Ok(bytes) => bytes,
        // The re-serialised manifest can be longer than the original (e.g. `1e5` is
        // written as `100000.0`); only possible near the 16 MiB manifest limit.
        Err(FormatError::ManifestTooLarge { .. }) => return,
        Err(e) => panic!("a file that parsed does not serialise: {e}"),
    };
    let again = ModelFile::from_bytes(&bytes)
        .unwrap_or_else(|e| panic!("a re-serialised file does not parse: {e}"));
    assert_eq!(again, model, "round trip changed the model");
    let bytes_again = again
        .to_bytes()
        .unwrap_or_else(|e| panic!("second serialisation failed: {e}"));
    assert_eq!(bytes_again, bytes, "serialisation is not canonical");
}
