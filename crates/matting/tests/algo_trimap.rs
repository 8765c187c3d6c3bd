//! `make_trimap` against the trimap rembg's `alpha_matting_cutout` builds (SciPy
//! `binary_erosion`), for its default erode size, an odd one and 0 (SciPy's cross).

mod algo_support;

use algo_support::{algo_fixture, gray, matting_fixture, u8_diff};
use nobg_matting::alpha_matting::make_trimap;

#[test]
fn trimaps_match_rembg() {
    let mask = gray(matting_fixture("coffee", "alpha.png"));
    for erode in [10, 7, 0] {
        let want = gray(algo_fixture(&format!("trimap_coffee_e{erode}.png")));
        let got = make_trimap(&mask, 240, 10, erode);
        let (max, n) = u8_diff(got.as_raw(), want.as_raw());
        assert_eq!((max, n), (0, 0), "erode {erode}: {n} pixels differ");
    }
}
