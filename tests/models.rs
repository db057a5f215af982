//! Model integrity on face-api's real files (fetched by the setup script): published files
//! are pinned by digest, a registered model's content is recorded at registration, and
//! degenerate weights are refused whatever the name.

mod common;

use std::path::Path;

use veridoc::verify::VerifyOptions;
use veridoc::ErrorKind;

const DETECTOR: &str = "tiny_face_detector_model";

/// A copy of the detector's files in `dir` under `name` (the manifest's path renamed).
fn copy_detector(models: &Path, dir: &Path, name: &str) -> std::path::PathBuf {
    let manifest =
        std::fs::read_to_string(models.join(format!("{DETECTOR}-weights_manifest.json")))
            .expect("manifest");
    let manifest = manifest.replace(&format!("{DETECTOR}.bin"), &format!("{name}.bin"));
    let to = dir.join(format!("{name}-weights_manifest.json"));
    std::fs::write(&to, manifest).expect("write manifest");
    std::fs::copy(
        models.join(format!("{DETECTOR}.bin")),
        dir.join(format!("{name}.bin")),
    )
    .expect("copy weights");
    to
}

/// A CPU engine with face-api's published landmark and expression networks and the given
/// detector manifest.
fn engine_with(models: &Path, detector: &Path) -> veridoc::Engine {
    let e = common::cpu_engine();
    e.register_landmark_model(models.join("face_landmark_68_model-weights_manifest.json"));
    e.register_expression_model(models.join("face_expression_model-weights_manifest.json"));
    e.register_face_model(detector);
    e
}

/// Overwrites `path` with zeros of the same length.
fn zero(path: &Path) {
    let len = std::fs::metadata(path).expect("file").len() as usize;
    std::fs::write(path, vec![0u8; len]).expect("zero");
}

fn model_error(e: &veridoc::Error) -> String {
    assert!(matches!(e.kind(), ErrorKind::Model(_)), "{e:?}");
    e.to_string()
}

#[test]
fn published_files_load_and_damaged_copies_under_their_names_are_refused() {
    let Some(assets) = common::assets_or_skip("published_files_load") else {
        return;
    };
    let models = assets.join("models");
    let e = engine_with(
        &models,
        &models.join(format!("{DETECTOR}-weights_manifest.json")),
    );
    e.verifier(VerifyOptions::default())
        .expect("the published detector loads");

    // The same name, all-zero weights of the same length: the pinned digest refuses it.
    let tmp = tempfile::tempdir().expect("tmp");
    let manifest = copy_detector(&models, tmp.path(), DETECTOR);
    zero(&tmp.path().join(format!("{DETECTOR}.bin")));
    let e = engine_with(&models, &manifest);
    let err = e.verifier(VerifyOptions::default()).unwrap_err();
    let msg = model_error(&err);
    assert!(msg.contains("does not match the published file"), "{msg}");
}

#[test]
fn zeroed_weights_under_another_name_are_refused_as_degenerate() {
    let Some(assets) = common::assets_or_skip("zeroed_weights_under_another_name") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let manifest = copy_detector(&assets.join("models"), tmp.path(), "my_detector");
    zero(&tmp.path().join("my_detector.bin"));
    let e = engine_with(&assets.join("models"), &manifest);
    let err = e.verifier(VerifyOptions::default()).unwrap_err();
    let msg = model_error(&err);
    assert!(msg.contains("zeroed or damaged"), "{msg}");
}

#[test]
fn a_model_edited_after_registration_is_refused() {
    let Some(assets) = common::assets_or_skip("a_model_edited_after_registration") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let models = assets.join("models");
    let manifest = copy_detector(&models, tmp.path(), "my_detector");
    let e = engine_with(&models, &manifest);
    // 64 flipped bits after registration (scores moved by up to 0.196 unchecked)
    let bin = tmp.path().join("my_detector.bin");
    let mut w = std::fs::read(&bin).expect("bin");
    let step = w.len() / 64;
    for k in 0..64 {
        w[k * step] ^= 1 << (k % 8);
    }
    std::fs::write(&bin, &w).expect("flip");
    let err = e.verifier(VerifyOptions::default()).unwrap_err();
    let msg = model_error(&err);
    assert!(msg.contains("changed since it was registered"), "{msg}");
    // registering again accepts the new content
    e.register_face_model(&manifest);
    e.verifier(VerifyOptions::default())
        .expect("re-registered content loads");
}
