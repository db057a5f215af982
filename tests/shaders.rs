//! Shader checks that need no GPU: every `shaders/*.wgsl` parses and validates with naga
//! (the compiler wgpu uses), and each parameter struct matches its Rust twin's size.

#[test]
fn every_shader_validates() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "wgsl") {
            continue;
        }
        let src = std::fs::read_to_string(&path).unwrap();
        let module = naga::front::wgsl::parse_str(&src)
            .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&src)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&src)));
        n += 1;
    }
    assert!(n >= 3, "expected the resize, convert and detect shaders");
}

#[cfg(feature = "gpu")]
#[test]
fn param_structs_match_their_rust_twins() {
    use veridoc::gpu::params::{CONVERT_PARAMS_SIZE, RESIZE_PARAMS_SIZE};
    for (src, name, want) in [
        (
            veridoc::gpu::RESIZE_WGSL,
            "ResizeParams",
            RESIZE_PARAMS_SIZE,
        ),
        (
            veridoc::gpu::CONVERT_WGSL,
            "ConvertParams",
            CONVERT_PARAMS_SIZE,
        ),
        (
            veridoc::gpu::DETECT_WGSL,
            "DetectParams",
            veridoc::gpu::DETECT_PARAMS_SIZE,
        ),
        (
            veridoc::gpu::LANDMARKS_WGSL,
            "NetParams",
            veridoc::gpu::NET_PARAMS_SIZE,
        ),
    ] {
        let module = naga::front::wgsl::parse_str(src).unwrap();
        let ty = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{name} not found"))
            .0;
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        assert_eq!(
            layouter[ty].size, want,
            "{name} size differs from the Rust struct"
        );
    }
}

#[test]
fn every_shader_has_a_cpu_twin() {
    let root = env!("CARGO_MANIFEST_DIR");
    for entry in std::fs::read_dir(format!("{root}/shaders")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wgsl") {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            let twin = format!("{root}/src/cpu/{stem}.rs");
            assert!(
                std::path::Path::new(&twin).exists(),
                "{stem}.wgsl has no src/cpu/{stem}.rs"
            );
        }
    }
}

#[cfg(feature = "gpu")]
#[test]
fn detect_shader_has_the_entry_points_the_host_uses() {
    let module = naga::front::wgsl::parse_str(veridoc::gpu::DETECT_WGSL).unwrap();
    for name in [
        "conv0_4",
        "depthwise4",
        "pointwise",
        "pointwise4",
        "maxpool",
    ] {
        let ep = module
            .entry_points
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("detect.wgsl has no entry point {name}"));
        // the host dispatches ceil(total / 64) workgroups (WG in src/gpu/detect.rs)
        assert_eq!(ep.workgroup_size, [64, 1, 1], "{name}");
    }
}

#[cfg(feature = "gpu")]
#[test]
fn landmarks_shader_has_the_entry_points_the_host_uses() {
    let module = naga::front::wgsl::parse_str(veridoc::gpu::LANDMARKS_WGSL).unwrap();
    for name in veridoc::gpu::NET_ENTRY_POINTS {
        let ep = module
            .entry_points
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("landmarks.wgsl has no entry point {name}"));
        assert_eq!(ep.workgroup_size, [64, 1, 1], "{name}");
    }
}
