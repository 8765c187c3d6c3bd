//! Winograd F(4×4, 3×3) against candle's own `conv2d` (an independent direct convolution) on
//! random inputs: odd sizes (partial tiles on every edge), dilations 1–3, padding other than
//! "same", batches, and the two-part (channel-concatenated) input of IS-Net's decoder.

use anyhow::Result;
use candle_core::{Device, Tensor, D};
use isnet::winograd::{Conv, Part, WinogradWeights};

struct Case {
    batch: usize,
    parts: &'static [usize],
    c_out: usize,
    h: usize,
    w: usize,
    padding: usize,
    dilation: usize,
    relu: bool,
    /// Add a residual after the ReLU (the RSU blocks' last convolution).
    residual: bool,
}

/// Uniform values in [-scale, scale) from a seeded xorshift (candle's CPU rng takes no seed).
fn uniform(n: usize, scale: f32, state: &mut u64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            ((*state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn check(case: &Case, seed: u64) -> Result<(f32, f32)> {
    let dev = Device::Cpu;
    let mut state = 0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x2545_f491_4f6c_dd1d);
    let c_in: usize = case.parts.iter().sum();
    let inputs = case
        .parts
        .iter()
        .map(|&c| {
            let shape = (case.batch, c, case.h, case.w);
            Tensor::from_vec(
                uniform(shape.0 * c * shape.2 * shape.3, 1.5, &mut state),
                shape,
                &dev,
            )
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    // He-like scale so outputs are O(1) whatever c_in is.
    let std = (6.0 / (9 * c_in) as f64).sqrt() as f32;
    let wshape = (case.c_out, c_in, 3, 3);
    let weight = Tensor::from_vec(
        uniform(case.c_out * c_in * 9, std, &mut state),
        wshape,
        &dev,
    )?;
    let bias = Tensor::from_vec(uniform(case.c_out, 0.5, &mut state), case.c_out, &dev)?;

    let x = Tensor::cat(&inputs, 1)?;
    let reference = x
        .conv2d(&weight, case.padding, 1, case.dilation, 1)?
        .broadcast_add(&bias.reshape((1, case.c_out, 1, 1))?)?;
    let reference = if case.relu {
        reference.relu()?
    } else {
        reference
    };
    let res_t = Tensor::from_vec(
        uniform(reference.elem_count(), 2.0, &mut state),
        reference.shape(),
        &dev,
    )?;
    let res_v = res_t.flatten_all()?.to_vec1::<f32>()?;
    let reference = if case.residual {
        (reference + res_t)?
    } else {
        reference
    };

    let wdata = weight.flatten_all()?.to_vec1::<f32>()?;
    let u = WinogradWeights::new(&wdata, case.c_out, c_in);
    let datas = inputs
        .iter()
        .map(|t| t.flatten_all()?.to_vec1::<f32>())
        .collect::<candle_core::Result<Vec<_>>>()?;
    let parts: Vec<Part> = datas
        .iter()
        .zip(case.parts)
        .map(|(data, &channels)| Part { data, channels })
        .collect();
    let bias_v = bias.to_vec1::<f32>()?;
    let conv = Conv {
        weights: &u,
        bias: &bias_v,
        padding: case.padding,
        dilation: case.dilation,
        relu: case.relu,
        residual: case.residual.then_some(res_v.as_slice()),
    };
    let got = conv.run(&parts, case.batch, (case.h, case.w));
    let got = Tensor::from_vec(got, reference.shape(), &dev)?;
    let diff = (got - &reference)?.abs()?.flatten_all()?;
    let scale: f32 = reference
        .abs()?
        .flatten_all()?
        .max(D::Minus1)?
        .to_scalar()?;
    Ok((diff.max(0)?.to_scalar()?, scale))
}

#[test]
fn winograd_matches_a_direct_convolution() -> Result<()> {
    let cases = [
        // Exact tiles, "same" padding.
        Case {
            batch: 1,
            parts: &[8],
            c_out: 16,
            h: 16,
            w: 32,
            padding: 1,
            dilation: 1,
            relu: true,
            residual: false,
        },
        // Odd sizes: partial tiles at the bottom and right edges.
        Case {
            batch: 2,
            parts: &[5],
            c_out: 7,
            h: 13,
            w: 11,
            padding: 1,
            dilation: 1,
            relu: false,
            residual: false,
        },
        // Decoder input: two parts concatenated along channels.
        Case {
            batch: 1,
            parts: &[6, 10],
            c_out: 12,
            h: 18,
            w: 23,
            padding: 1,
            dilation: 1,
            relu: true,
            residual: true,
        },
        // Dilations as in RSU-4F, "same" padding, sizes not multiples of 4·d.
        Case {
            batch: 1,
            parts: &[9],
            c_out: 4,
            h: 21,
            w: 19,
            padding: 2,
            dilation: 2,
            relu: true,
            residual: false,
        },
        Case {
            batch: 2,
            parts: &[3, 4],
            c_out: 5,
            h: 25,
            w: 30,
            padding: 3,
            dilation: 3,
            relu: false,
            residual: true,
        },
        // No padding: the output shrinks by 2·d.
        Case {
            batch: 1,
            parts: &[4],
            c_out: 6,
            h: 15,
            w: 14,
            padding: 0,
            dilation: 1,
            relu: false,
            residual: false,
        },
        Case {
            batch: 1,
            parts: &[4],
            c_out: 3,
            h: 17,
            w: 20,
            padding: 0,
            dilation: 2,
            relu: false,
            residual: false,
        },
        // Smaller than one tile.
        Case {
            batch: 1,
            parts: &[2],
            c_out: 2,
            h: 3,
            w: 2,
            padding: 1,
            dilation: 1,
            relu: false,
            residual: false,
        },
        // Wide channels (many GEMM columns per job, several jobs).
        Case {
            batch: 1,
            parts: &[64],
            c_out: 64,
            h: 64,
            w: 48,
            padding: 1,
            dilation: 1,
            relu: true,
            residual: true,
        },
        // Rows of tiles wider than a job: each row is cut into pieces (one residue class,
        // then two with dilation 2).
        Case {
            batch: 1,
            parts: &[32, 32],
            c_out: 64,
            h: 9,
            w: 322,
            padding: 1,
            dilation: 1,
            relu: true,
            residual: true,
        },
        Case {
            batch: 2,
            parts: &[64],
            c_out: 64,
            h: 11,
            w: 701,
            padding: 2,
            dilation: 2,
            relu: false,
            residual: true,
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let (max, scale) = check(case, i as u64)?;
        eprintln!("case {i}: max |winograd - direct| {max:.2e} (|out| <= {scale:.2})");
        // f32 direct convs of these sizes agree to ~1e-6; Winograd's transforms cost a few
        // more bits. A wrong tap or a misplaced tile is off by O(1).
        assert!(
            max <= 2e-5 * scale.max(1.0),
            "case {i}: max {max:.3e}, |out| {scale:.2}"
        );
    }
    Ok(())
}

#[test]
fn an_empty_output_is_empty() -> Result<()> {
    let u = WinogradWeights::new(&[0.0; 9], 1, 1);
    let conv = Conv {
        weights: &u,
        bias: &[0.0],
        padding: 0,
        dilation: 1,
        relu: false,
        residual: None,
    };
    let data = [1.0f32; 4];
    let out = conv.run(
        &[Part {
            data: &data,
            channels: 1,
        }],
        1,
        (2, 2),
    );
    assert!(out.is_empty());
    Ok(())
}
