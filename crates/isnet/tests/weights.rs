//! Checkpoints written in RMBG-1.4's key layout load through the real (mmap) path in every
//! float dtype and give the same mask as the in-memory synthetic model.

use candle_core::{DType, Device, Module, Tensor};
use isnet::synthetic::{expected_tensors, load_synthetic, write_safetensors, write_tensors};
use isnet::{find_preset, Config, IsNet};

fn input(h: usize, w: usize) -> anyhow::Result<Tensor> {
    let n = 3 * h * w;
    let data: Vec<f32> = (0..n)
        .map(|i| ((i * 7919 % 1000) as f32) / 1000.0 - 0.5)
        .collect();
    Ok(Tensor::from_vec(data, (1, 3, h, w), &Device::Cpu)?)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> anyhow::Result<f32> {
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

#[test]
fn key_layout_is_rmbg_1_4() -> anyhow::Result<()> {
    let keys = expected_tensors(&Config::default())?;
    let has = |k: &str, shape: &[usize]| keys.iter().any(|(n, s)| n == k && s == shape);
    assert!(has("conv_in.weight", &[64, 3, 3, 3]));
    assert!(has("stage1.rebnconvin.conv_s1.weight", &[64, 64, 3, 3]));
    assert!(has("stage1.rebnconv7.bn_s1.running_var", &[32]));
    assert!(has("stage1.rebnconv1d.conv_s1.weight", &[64, 64, 3, 3]));
    assert!(has("stage5.rebnconv4.conv_s1.weight", &[256, 256, 3, 3]));
    assert!(has("stage5d.rebnconvin.conv_s1.weight", &[512, 1024, 3, 3]));
    assert!(has("stage1d.rebnconv1d.bn_s1.weight", &[64]));
    assert!(has("side6.weight", &[1, 512, 3, 3]));
    Ok(())
}

#[test]
fn written_checkpoints_load_in_every_float_dtype() -> anyhow::Result<()> {
    let cfg = find_preset("rmbg-1.4")
        .map(|p| p.config)
        .unwrap_or_default();
    let reference = load_synthetic(&cfg, 7, &Device::Cpu, DType::F32)?;
    let x = input(64, 64)?;
    let want = reference.forward(&x)?;
    assert_eq!(want.dims(), &[1, 1, 64, 64]);
    let (lo, hi) = (
        want.flatten_all()?.min(0)?.to_scalar::<f32>()?,
        want.flatten_all()?.max(0)?.to_scalar::<f32>()?,
    );
    assert!((0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi) && lo < hi);

    let dir = std::env::temp_dir().join(format!("isnet-weights-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    for (dtype, tol) in [(DType::F32, 0.0), (DType::F16, 2e-2), (DType::BF16, 1e-1)] {
        let path = dir.join(format!("{dtype:?}.safetensors"));
        write_safetensors(&cfg, 7, &path, dtype)?;
        let model = IsNet::load(&path, &cfg, &Device::Cpu, DType::F32)?;
        let d = max_abs_diff(&model.forward(&x)?, &want)?;
        assert!(d <= tol, "{dtype:?}: max |diff| {d} > {tol}");
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn a_checkpoint_missing_a_tensor_is_refused_by_name() -> anyhow::Result<()> {
    let cfg = Config::default();
    let tensors: Vec<_> = expected_tensors(&cfg)?
        .into_iter()
        .filter(|(n, _)| n != "side3.bias")
        .map(|(n, s)| {
            let len = s.iter().product();
            (n, s, vec![0f32; len])
        })
        .collect();
    let path = std::env::temp_dir().join(format!("isnet-missing-{}.st", std::process::id()));
    write_tensors(&tensors, &path, DType::F16)?;
    let err = IsNet::load(&path, &cfg, &Device::Cpu, DType::F32).err();
    std::fs::remove_file(&path)?;
    let msg = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("side3.bias"), "{msg}");
    Ok(())
}

#[test]
fn non_square_inputs_give_a_full_size_mask() -> anyhow::Result<()> {
    let model = load_synthetic(&Config::default(), 1, &Device::Cpu, DType::F32)?;
    let out = model.forward(&input(96, 128)?)?;
    assert_eq!(out.dims(), &[1, 1, 96, 128]);
    Ok(())
}
