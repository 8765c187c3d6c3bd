//! The two shape ops against PyTorch's definitions, written out independently here:
//! `F.interpolate(mode='bilinear', align_corners=False, size=...)` and
//! `MaxPool2d(2, stride=2, ceil_mode=True)`.

use candle_core::{Device, Tensor};
use isnet::rebnconv::{pool_ceil, upsample_like};

/// PyTorch's `upsample_bilinear2d` (align_corners=False, explicit size): source coordinate
/// `(dst + 0.5) * in/out - 0.5`, clamped at 0, neighbours clamped to the last index.
fn torch_bilinear(src: &[f32], (h, w): (usize, usize), (oh, ow): (usize, usize)) -> Vec<f32> {
    let coord = |d: usize, i: usize, o: usize| {
        let s = ((d as f64 + 0.5) * i as f64 / o as f64 - 0.5).max(0.0);
        let i0 = (s.floor() as usize).min(i - 1);
        let i1 = (i0 + 1).min(i - 1);
        (i0, i1, s - i0 as f64)
    };
    let mut out = Vec::with_capacity(oh * ow);
    for y in 0..oh {
        let (y0, y1, fy) = coord(y, h, oh);
        for x in 0..ow {
            let (x0, x1, fx) = coord(x, w, ow);
            let at = |yy: usize, xx: usize| src[yy * w + xx] as f64;
            let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
            let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
            out.push((top * (1.0 - fy) + bottom * fy) as f32);
        }
    }
    out
}

fn ramp(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 37 % 11) as f32) * 0.25 - 1.0)
        .collect()
}

#[test]
fn upsample_like_matches_torch_bilinear_without_align_corners() -> anyhow::Result<()> {
    // Doubling (the decoder's usual case), odd ratios (ceil-mode pooling of odd sides) and a
    // shrink, each checked pixel by pixel.
    for ((h, w), (oh, ow)) in [
        ((2, 2), (4, 4)),
        ((3, 5), (6, 9)),
        ((5, 3), (7, 4)),
        ((6, 6), (4, 5)),
    ] {
        let data = ramp(h * w);
        let src = Tensor::from_vec(data.clone(), (1, 1, h, w), &Device::Cpu)?;
        let tar = Tensor::zeros((1, 1, oh, ow), candle_core::DType::F32, &Device::Cpu)?;
        let got = upsample_like(&src, &tar)?.flatten_all()?.to_vec1::<f32>()?;
        let want = torch_bilinear(&data, (h, w), (oh, ow));
        for (i, (g, e)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - e).abs() < 1e-6,
                "{h}x{w}->{oh}x{ow} at {i}: {g} vs {e}"
            );
        }
    }
    // The documented PyTorch result of [[1,2],[3,4]] -> 4x4 (first row).
    let src = Tensor::from_vec(vec![1f32, 2., 3., 4.], (1, 1, 2, 2), &Device::Cpu)?;
    let tar = Tensor::zeros((1, 1, 4, 4), candle_core::DType::F32, &Device::Cpu)?;
    let row = upsample_like(&src, &tar)?.flatten_all()?.to_vec1::<f32>()?;
    assert_eq!(&row[..4], &[1.0, 1.25, 1.75, 2.0]);
    Ok(())
}

#[test]
fn pool_ceil_keeps_the_partial_windows_of_odd_sides() -> anyhow::Result<()> {
    let (h, w) = (5, 7);
    let data = ramp(h * w);
    let x = Tensor::from_vec(data.clone(), (1, 1, h, w), &Device::Cpu)?;
    let got = pool_ceil(&x)?;
    assert_eq!(got.dims(), &[1, 1, 3, 4]);
    let got = got.flatten_all()?.to_vec1::<f32>()?;
    for oy in 0..3 {
        for ox in 0..4 {
            let mut m = f32::NEG_INFINITY;
            for y in 2 * oy..(2 * oy + 2).min(h) {
                for x in 2 * ox..(2 * ox + 2).min(w) {
                    m = m.max(data[y * w + x]);
                }
            }
            assert_eq!(got[oy * 4 + ox], m, "window ({oy}, {ox})");
        }
    }
    Ok(())
}
