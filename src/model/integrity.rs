//! Model integrity: the published files are pinned by digest, a registered model's content
//! is recorded when it is registered, and degenerate weights are refused whatever their
//! source.
//!
//! A corrupted but well-formed weights file parses: an all-zero `.bin` gave 0 faces on every
//! photo with exit code 0, and 64 flipped bits moved scores by up to 0.196. Parsing cannot
//! tell; digests and a sanity pass over the values can.

use super::Model;
use crate::error::{Error, ErrorKind, Result};

/// BLAKE3 digests of the model files face-api publishes (npm `@vladmandic/face-api@1.7.15`,
/// `package/model/`), computed from the published files with `b3sum`. A file with one of
/// these names must match its digest: a retrained model goes under another name.
pub const PUBLISHED: [(&str, &str); 8] = [
    (
        "tiny_face_detector_model-weights_manifest.json",
        "97abb2017641c77aa3d942507ebd5e2854197f83373abdcdbe8fecaec0d4e725",
    ),
    (
        "tiny_face_detector_model.bin",
        "db344a38cc88d4ff7602d672f4501393c019ed09e1068f11ce78709ecfaeaa77",
    ),
    (
        "face_landmark_68_model-weights_manifest.json",
        "79cb0092f659776611c86194dd3a18dd2a68f8b69bd1e519dcf06ef98a50995c",
    ),
    (
        "face_landmark_68_model.bin",
        "400c2dfe6d0198e05f1ef8b73c742c33123567d1a95c5f6e44e279a705f1e5d6",
    ),
    (
        "face_landmark_68_tiny_model-weights_manifest.json",
        "9509a167eaf55ab70b85560dbe9b56b7b9fe1460004c47a32f5344fea1b6b7eb",
    ),
    (
        "face_landmark_68_tiny_model.bin",
        "1a07767385db05905cf1a9a455c35eef2daa1d442141d44f0cd04779487c825c",
    ),
    (
        "face_expression_model-weights_manifest.json",
        "a3f6c12dd090d0b1bc1b4fdedcb5816776426ecb6c43fe95a4d54bef275995e9",
    ),
    (
        "face_expression_model.bin",
        "f7dc382cbf22ca9f1826bca1c5b32601d87683e9ef393d7006a180e53688c95e",
    ),
];

/// Refuses `bytes` read from a file named like a published one unless it is that file.
pub(crate) fn check_published(model: &str, file_name: &str, bytes: &[u8]) -> Result<()> {
    let Some((_, want)) = PUBLISHED.iter().find(|(n, _)| *n == file_name) else {
        return Ok(());
    };
    let got = blake3::hash(bytes).to_hex();
    if got.as_str() != *want {
        return Err(Error::new(ErrorKind::Model(format!(
            "model {model}: {file_name} does not match the published file \
             (blake3 {got}, expected {want}): corrupted or replaced; restore it, or give a \
             retrained model another name"
        ))));
    }
    Ok(())
}

/// Tensors of at least this many values may not be constant: a trained kernel never is,
/// while a zeroed or truncated-and-padded file makes every tensor constant. Smaller
/// tensors (biases of a few channels) can legitimately be.
pub const MIN_VARYING: usize = 64;

impl Model {
    /// Refuses degenerate weights: non-finite values, quantization steps that are zero,
    /// negative or non-finite, and constant tensors of [`MIN_VARYING`] values or more.
    ///
    /// # Errors
    /// `Model`, naming the model and tensor.
    pub fn check_weights(&self) -> Result<()> {
        let bad = |t: &str, why: String| {
            Err(Error::new(ErrorKind::Model(format!(
                "model {}: tensor {t}: {why}",
                self.name
            ))))
        };
        for t in &self.tensors {
            if let Some(q) = t.quantization {
                if !(q.scale.is_finite() && q.scale > 0.0 && q.min.is_finite()) {
                    return bad(
                        &t.name,
                        format!("degenerate quantization (scale {}, min {})", q.scale, q.min),
                    );
                }
            }
            if let Some(i) = t.data.iter().position(|v| !v.is_finite()) {
                return bad(&t.name, format!("value {i} is {}", t.data[i]));
            }
            if t.data.len() >= MIN_VARYING && t.data.iter().all(|&v| v == t.data[0]) {
                return bad(
                    &t.name,
                    format!(
                        "all {} values are {} (zeroed or damaged weights)",
                        t.data.len(),
                        t.data[0]
                    ),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(dtype_q: Option<(f32, f32)>, n: usize) -> Vec<u8> {
        let q = dtype_q.map_or(String::new(), |(s, m)| {
            format!(r#","quantization":{{"dtype":"uint8","scale":{s},"min":{m}}}"#)
        });
        // TF.js writes quantized tensors as float32 with a uint8 quantization entry.
        format!(r#"[{{"paths":["x.bin"],"weights":[{{"name":"k","shape":[{n}],"dtype":"float32"{q}}}]}}]"#)
            .into_bytes()
    }

    #[test]
    fn healthy_weights_pass() {
        let w: Vec<u8> = (0..128u8).collect();
        let m = Model::from_tfjs("m", &manifest(Some((0.01, -0.5)), 128), &w).unwrap();
        m.check_weights().unwrap();
    }

    #[test]
    fn zeroed_weights_and_degenerate_scales_are_refused() {
        let zeros = vec![0u8; 128];
        let m = Model::from_tfjs("m", &manifest(Some((0.01, -0.5)), 128), &zeros).unwrap();
        let e = m.check_weights().unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Model(_)), "{e:?}");
        let w: Vec<u8> = (0..128u8).collect();
        for (s, mn) in [(0.0, 0.0), (-1.0, 0.0)] {
            let m = Model::from_tfjs("m", &manifest(Some((s, mn)), 128), &w).unwrap();
            assert!(m.check_weights().is_err(), "scale {s}");
        }
        let nan: Vec<u8> = (0..32)
            .flat_map(|i| if i == 7 { f32::NAN } else { i as f32 }.to_le_bytes())
            .collect();
        let m = Model::from_tfjs("m", &manifest(None, 32), &nan).unwrap();
        assert!(m.check_weights().is_err());
        // a small constant tensor (a bias) is fine
        let small = vec![0u8; 8];
        let m = Model::from_tfjs("m", &manifest(Some((0.01, 0.0)), 8), &small).unwrap();
        m.check_weights().unwrap();
    }

    #[test]
    fn published_names_must_match_their_digest() {
        check_published("m", "my_model.bin", b"anything").unwrap();
        let e = check_published("m", "tiny_face_detector_model.bin", &[0u8; 193_321]).unwrap_err();
        assert!(e.to_string().contains("does not match"), "{e}");
    }
}
