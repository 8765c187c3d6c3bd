//! The deformable convolution with bf16 products (the CPU's bf16 mode), fused: per band of
//! output pixels and per kernel tap, the tap's samples are located, the channels gathered
//! (f32, as the f32 path does) two at a time straight into bf16 panels and multiplied by that
//! tap's slice of the weight, accumulating into the output in f32. The band's columns for one tap stay in
//! L2 instead of the f32 path's full `[C*kh*kw, pixels]` buffer (up to 256 MiB a band).

use std::cell::RefCell;
use std::sync::Arc;

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use nobg_bf16::{Buffer, TileRows};
use rayon::prelude::*;

use super::cpu::{gather, locate_tap, Sample};
use super::geometry::Geometry;
use super::DeformConv2dConfig;

/// The weight packed per tap: `taps[t]` is `weight[:, :, ti, tj]`, `[Cout, C]`.
#[derive(Debug)]
pub struct DeformWeightBf16 {
    taps: Vec<TileRows>,
    weight: Tensor,
}

impl DeformWeightBf16 {
    /// Packs `weight [Cout, C, kh, kw]` (f32).
    pub fn new(weight: &Tensor) -> Result<Self> {
        let (out_c, in_c, kh, kw) = weight.dims4()?;
        // [kh*kw, Cout, C]: one contiguous [Cout, C] matrix per tap.
        let per_tap = weight
            .permute((2, 3, 0, 1))?
            .contiguous()?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let taps = per_tap
            .chunks(out_c * in_c)
            .map(|w| TileRows::from_f32(w, out_c, in_c, in_c))
            .collect::<Vec<_>>();
        debug_assert_eq!(taps.len(), kh * kw);
        Ok(Self {
            taps,
            weight: weight.clone(),
        })
    }
}

/// `deform_conv2d` (no bias) with bf16 products; f32 CPU tensors, output `[B, Cout, Ho, Wo]`.
pub fn deform_conv2d_bf16(
    input: &Tensor,
    offset: &Tensor,
    mask: &Tensor,
    weight: &Arc<DeformWeightBf16>,
    cfg: DeformConv2dConfig,
) -> Result<Tensor> {
    let geo = Geometry::validate(input, offset, mask, &weight.weight, None, cfg)?;
    let op = DeformConvBf16 {
        geo,
        weight: weight.clone(),
    };
    input
        .contiguous()?
        .apply_op3_no_bwd(&offset.contiguous()?, &mask.contiguous()?, &op)
}

struct DeformConvBf16 {
    geo: Geometry,
    weight: Arc<DeformWeightBf16>,
}

/// Column values of one tap per band (`C x pixels`, f32): with its bf16 copy and the band's
/// output rows, about 1.5 MiB, inside L2.
const BAND_VALUES: usize = 128 * 1024;

thread_local! {
    static SCRATCH: RefCell<(Vec<Sample<f32>>, Buffer)> = RefCell::new((Vec::new(), Buffer::new()));
}

impl CustomOp3 for DeformConvBf16 {
    fn name(&self) -> &'static str {
        "deform-conv-bf16"
    }

    fn cpu_fwd(
        &self,
        input: &CpuStorage,
        input_l: &Layout,
        offset: &CpuStorage,
        offset_l: &Layout,
        mask: &CpuStorage,
        mask_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(i), CpuStorage::F32(o), CpuStorage::F32(m)) = (input, offset, mask)
        else {
            bail!("deform-conv-bf16: f32 operands only");
        };
        let (input, offset, mask) = (slice(i, input_l)?, slice(o, offset_l)?, slice(m, mask_l)?);
        let g = &self.geo;
        let taps = g.taps();
        let (plane_in, plane_out) = (g.height * g.width, g.out_h * g.out_w);
        let (c, out_c) = (g.channels, g.out_channels);
        if self.weight.taps.len() != taps
            || self
                .weight
                .taps
                .iter()
                .any(|t| t.rows() != out_c || t.cols() != c)
        {
            bail!("deform-conv-bf16: packed weight does not match the geometry");
        }
        let band = (BAND_VALUES / c)
            .next_multiple_of(nobg_bf16::N_PANEL)
            .min(plane_out);
        let bands = plane_out.div_ceil(band);
        // Not zeroed: the first tap's product overwrites every element.
        let mut out = Vec::<f32>::with_capacity(g.batch * out_c * plane_out);
        let out_ptr = SyncPtr(out.as_mut_ptr());
        (0..g.batch * bands).into_par_iter().for_each(|task| {
            let (b, band_i) = (task / bands, task % bands);
            let p0 = band_i * band;
            let pixels = band.min(plane_out - p0);
            let input_b = &input[b * c * plane_in..][..c * plane_in];
            let offset_b = &offset[b * 2 * taps * plane_out..][..2 * taps * plane_out];
            let mask_b = &mask[b * taps * plane_out..][..taps * plane_out];
            SCRATCH.with(|scratch| {
                let (samples, packed) = &mut *scratch.borrow_mut();
                samples.resize(pixels, Sample::zero());
                for (tap, weight) in self.weight.taps.iter().enumerate() {
                    locate_tap(g, p0, tap, offset_b, mask_b, samples);
                    let panels = nobg_bf16::pack_panels_with(c, pixels, packed, |ch, row| {
                        gather(&input_b[ch * plane_in..][..plane_in], samples, row)
                    });
                    // SAFETY: task (b, band) writes only pixels p0..p0+pixels of image b's
                    // output planes; no two tasks share an element, and all lie in `out`'s
                    // allocation. Tap 0 writes them before any tap reads them.
                    unsafe {
                        let dst = out_ptr.get().add(b * out_c * plane_out + p0);
                        nobg_bf16::gemm_unchecked(weight.view(), panels, dst, plane_out, tap > 0);
                    }
                }
            });
        });
        // SAFETY: the tasks cover every pixel of every output plane, and tap 0 wrote each.
        unsafe { out.set_len(g.batch * out_c * plane_out) };
        Ok((
            CpuStorage::F32(out),
            Shape::from((g.batch, out_c, g.out_h, g.out_w)),
        ))
    }
}

fn slice<'a>(data: &'a [f32], layout: &Layout) -> Result<&'a [f32]> {
    match layout.contiguous_offsets() {
        Some((start, end)) if end <= data.len() => Ok(&data[start..end]),
        _ => bail!("deform-conv-bf16: operands must be contiguous"),
    }
}

#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
// SAFETY: used only to hand disjoint output ranges to rayon tasks (see the call site).
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}
impl SyncPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}
