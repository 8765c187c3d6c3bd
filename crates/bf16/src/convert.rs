//! f32 → bf16 rounding (to nearest, ties to even, as PyTorch's `.to(torch.bfloat16)`), in
//! the two shapes the packers need: a run of values, and two runs interleaved pairwise.
//! AVX512-BF16 twins where the CPU has them, `half`'s scalar conversion elsewhere; the two
//! give the same bits.

use half::bf16;

/// `dst[i] = bf16(src[i])`; `dst` and `src` have the same length.
pub fn round_into(src: &[f32], dst: &mut [bf16]) {
    assert_eq!(src.len(), dst.len(), "round_into: lengths differ");
    #[cfg(target_arch = "x86_64")]
    if has_avx512_bf16() {
        // SAFETY: the CPU has the features the twin is compiled for.
        unsafe { x86::round_into(src, dst) };
        return;
    }
    round_into_generic(src, dst);
}

/// `out[2i] = bf16(even[i])`, `out[2i + 1] = bf16(odd[i])`.
pub fn interleave_into(even: &[f32], odd: &[f32], out: &mut [bf16]) {
    assert!(
        even.len() == odd.len() && out.len() == 2 * even.len(),
        "interleave_into: lengths differ"
    );
    #[cfg(target_arch = "x86_64")]
    if has_avx512_bf16() {
        // SAFETY: as above.
        unsafe { x86::interleave_into(even, odd, out) };
        return;
    }
    interleave_into_generic(even, odd, out);
}

/// One pair row of [`crate::Panels`]: `even[c]` and `odd[c]` (rows `2p`, `2p + 1`) for
/// columns `0..np` (a multiple of 32), zero past `even.len()`, written into panel `c / 32` at
/// `panels[(c / 32) * panel_stride + (c % 32) * 2 ..]`, where `panels` starts at the pair row.
pub(crate) fn interleave_pair_row(
    even: &[f32],
    odd: &[f32],
    np: usize,
    panels: &mut [bf16],
    panel_stride: usize,
) {
    assert!(even.len() == odd.len() && even.len() <= np && np.is_multiple_of(32));
    assert!(np == 0 || panels.len() >= (np / 32 - 1) * panel_stride + 64);
    #[cfg(target_arch = "x86_64")]
    if has_avx512_bf16() {
        // SAFETY: the CPU has the features; the asserts bound every write.
        unsafe { x86::interleave_pair_row(even, odd, np, panels, panel_stride) };
        return;
    }
    for c in 0..np {
        let at = (c / 32) * panel_stride + (c % 32) * 2;
        let (e, o) = if c < even.len() {
            (even[c], odd[c])
        } else {
            (0.0, 0.0)
        };
        panels[at] = bf16::from_f32(e);
        panels[at + 1] = bf16::from_f32(o);
    }
}

pub(crate) fn round_into_generic(src: &[f32], dst: &mut [bf16]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = bf16::from_f32(s);
    }
}

pub(crate) fn interleave_into_generic(even: &[f32], odd: &[f32], out: &mut [bf16]) {
    for ((pair, &e), &o) in out.chunks_exact_mut(2).zip(even).zip(odd) {
        pair[0] = bf16::from_f32(e);
        pair[1] = bf16::from_f32(o);
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx512_bf16() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512bf16")
    })
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use half::bf16;
    use std::arch::x86_64::*;

    /// The mask of the first `len` (< 16) lanes.
    #[inline(always)]
    fn lanes(len: usize) -> __mmask16 {
        ((1u32 << len) - 1) as __mmask16
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub(super) unsafe fn round_into(src: &[f32], dst: &mut [bf16]) {
        let n = src.len();
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr() as *mut u16);
        let mut i = 0;
        while i + 16 <= n {
            let v = _mm512_loadu_ps(s.add(i));
            let h: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(v));
            _mm256_storeu_si256(d.add(i) as *mut __m256i, h);
            i += 16;
        }
        if i < n {
            let m = lanes(n - i);
            let v = _mm512_maskz_loadu_ps(m, s.add(i));
            let h: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(v));
            _mm256_mask_storeu_epi16(d.add(i) as *mut i16, m, h);
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub(super) unsafe fn interleave_pair_row(
        even: &[f32],
        odd: &[f32],
        np: usize,
        panels: &mut [bf16],
        panel_stride: usize,
    ) {
        let n = even.len();
        let (e, o, d) = (even.as_ptr(), odd.as_ptr(), panels.as_mut_ptr() as *mut u32);
        let mut c = 0;
        while c < np {
            let m = if c + 16 <= n {
                lanes_all()
            } else {
                lanes(n.saturating_sub(c).min(16))
            };
            let he: __m256i =
                std::mem::transmute(_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, e.add(c))));
            let ho: __m256i =
                std::mem::transmute(_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, o.add(c))));
            let v = _mm512_or_si512(
                _mm512_cvtepu16_epi32(he),
                _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(ho)),
            );
            // u32 units: a pair is one word; panel stride is in bf16 units.
            let at = (c / 32) * (panel_stride / 2) + (c % 32);
            _mm512_storeu_si512(d.add(at) as *mut __m512i, v);
            c += 16;
        }
    }

    #[inline(always)]
    fn lanes_all() -> __mmask16 {
        0xFFFF
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub(super) unsafe fn interleave_into(even: &[f32], odd: &[f32], out: &mut [bf16]) {
        let n = even.len();
        let (e, o, d) = (even.as_ptr(), odd.as_ptr(), out.as_mut_ptr() as *mut u32);
        let pair = |ve: __m512, vo: __m512| -> __m512i {
            let he: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(ve));
            let ho: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(vo));
            _mm512_or_si512(
                _mm512_cvtepu16_epi32(he),
                _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(ho)),
            )
        };
        let mut i = 0;
        while i + 16 <= n {
            let v = pair(_mm512_loadu_ps(e.add(i)), _mm512_loadu_ps(o.add(i)));
            _mm512_storeu_si512(d.add(i) as *mut __m512i, v);
            i += 16;
        }
        if i < n {
            let m = lanes(n - i);
            let v = pair(
                _mm512_maskz_loadu_ps(m, e.add(i)),
                _mm512_maskz_loadu_ps(m, o.add(i)),
            );
            _mm512_mask_storeu_epi32(d.add(i) as *mut i32, m, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn awkward_values(n: usize) -> Vec<f32> {
        // Ties (low half exactly 0x8000) both ways, subnormals, infinities, large and tiny.
        let mut v: Vec<f32> = (0..n)
            .map(|i| ((i as f32) * 0.7318 - 40.0) * 1.37f32.powi((i % 23) as i32 - 11))
            .collect();
        v.extend([
            f32::from_bits(0x3f80_8000),
            f32::from_bits(0x3f81_8000),
            f32::from_bits(0x0000_0001),
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            f32::MAX,
        ]);
        v
    }

    #[test]
    fn twins_round_to_nearest_even_like_half() {
        for n in [0usize, 1, 15, 16, 17, 100] {
            let src = awkward_values(n);
            let mut fast = vec![bf16::ZERO; src.len()];
            let mut slow = fast.clone();
            round_into(&src, &mut fast);
            round_into_generic(&src, &mut slow);
            assert_eq!(fast, slow, "n = {n}");
        }
        let mut one = [bf16::ZERO; 2];
        round_into_generic(
            &[f32::from_bits(0x3f80_8000), f32::from_bits(0x3f81_8000)],
            &mut one,
        );
        // Ties go to the even neighbour: 0x3f80 stays, 0x3f81 goes up to 0x3f82.
        assert_eq!(one.map(|b| b.to_bits()), [0x3f80, 0x3f82]);
    }

    #[test]
    fn interleave_twins_agree() {
        for n in [1usize, 16, 31, 40] {
            let even = awkward_values(n);
            let odd: Vec<f32> = even.iter().map(|x| -x * 0.5).collect();
            let mut fast = vec![bf16::ZERO; 2 * even.len()];
            let mut slow = fast.clone();
            interleave_into(&even, &odd, &mut fast);
            interleave_into_generic(&even, &odd, &mut slow);
            assert_eq!(fast, slow, "n = {n}");
            assert_eq!(slow[0], bf16::from_f32(even[0]));
            assert_eq!(slow[1], bf16::from_f32(odd[0]));
        }
    }
}
