//! remove.bg's API: every field against the backend's own cut-out, the three body types, the
//! JSON answer, the headers, auth and every error shape.

mod common;

use common::*;
use image::RgbaImage;
use nobg::RemoveOptions;
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

/// The backend's transparent cut-out of `img`: what every remove.bg result starts from.
async fn cutout(img: &[u8]) -> RgbaImage {
    backend()
        .remove(img.to_vec(), RemoveOptions::default())
        .await
        .expect("direct removal")
        .cutout
}

fn bounds(img: &RgbaImage) -> Option<(u32, u32, u32, u32)> {
    nobg_matting::layout::subject_bounds(img).map(|r| (r.x, r.y, r.width, r.height))
}

/// Straight-alpha "over" onto an opaque colour: the reference for `bg_color`/`bg_image_*`.
fn over_opaque(fg: [u8; 4], bg: [u8; 3]) -> [u8; 4] {
    let a = f32::from(fg[3]) / 255.0;
    let mix = |f: u8, b: u8| (f32::from(f) * a + f32::from(b) * (1.0 - a)).round() as u8;
    [mix(fg[0], bg[0]), mix(fg[1], bg[1]), mix(fg[2], bg[2]), 255]
}

fn assert_close(got: [u8; 4], want: [u8; 4], at: (u32, u32)) {
    let off = got
        .iter()
        .zip(want)
        .map(|(g, w)| g.abs_diff(w))
        .max()
        .unwrap();
    assert!(off <= 1, "at {at:?}: {got:?} != {want:?}");
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
    fn rgba(&self) -> RgbaImage {
        image::load_from_memory(&self.body)
            .expect("an image")
            .to_rgba8()
    }
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let resp = req.send().await.expect("request");
    Answer {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.bytes().await.unwrap().to_vec(),
    }
}

fn removebg(s: &TestServer) -> reqwest::RequestBuilder {
    s.http
        .post(s.url("/v1.0/removebg"))
        .header("X-Api-Key", KEY)
}

fn with_file(img: &[u8], fields: &[(&str, &str)]) -> Form {
    let mut form = Form::new().part("image_file", Part::bytes(img.to_vec()).file_name("in.png"));
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    form
}

#[tokio::test]
async fn multipart_form_and_json_bodies_give_the_same_cutout() {
    let s = TestServer::start().await;
    let img = fixture("chelsea.png");
    let cut = cutout(&img).await;
    let a = send(removebg(&s).multipart(with_file(&img, &[("format", "png")]))).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("content-type"), "image/png");
    assert_eq!(
        a.rgba(),
        cut,
        "451x300 is under the preview budget: the cut-out as is"
    );
    assert_eq!((a.header("x-width"), a.header("x-height")), ("451", "300"));
    assert_eq!(a.header("x-type"), "other");
    assert_eq!(a.header("x-credits-charged"), "0");

    let form =
        send(removebg(&s).form(&[("image_file_b64", b64(&img).as_str()), ("format", "png")])).await;
    assert_eq!(form.status, 200);
    assert_eq!(form.body, a.body);
    let body =
        send(removebg(&s).json(&json!({"image_file_b64": b64(&img), "format": "png"}))).await;
    assert_eq!(body.status, 200);
    assert_eq!(body.body, a.body);

    // Accept: application/json wraps the same file with the subject's box.
    let j = send(
        removebg(&s)
            .header("accept", "application/json")
            .multipart(with_file(
                &img,
                &[("format", "png"), ("type_level", "none")],
            )),
    )
    .await;
    assert_eq!(j.status, 200);
    let data = &j.json()["data"];
    assert_eq!(unb64(data["result_b64"].as_str().unwrap()), a.body);
    if let Some((x, y, w, h)) = bounds(&cut) {
        assert_eq!(data["foreground_left"], x);
        assert_eq!(data["foreground_top"], y);
        assert_eq!(data["foreground_width"], w);
        assert_eq!(data["foreground_height"], h);
        assert_eq!(j.header("x-foreground-width"), w.to_string());
    }
    assert_eq!(j.header("x-type"), "", "type_level=none sends no X-Type");
    s.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn image_url_is_fetched() {
    let s = TestServer::start().await;
    let img = fixture("chelsea.png");
    let origin = Receiver::start(0, Some(img.clone())).await;
    let a = send(removebg(&s).form(&[
        ("image_url", origin.url("/c.png").as_str()),
        ("format", "png"),
    ]))
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.rgba(), cutout(&img).await);
    let a = send(removebg(&s).form(&[("image_url", "http://10.0.0.1/x.png")])).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["errors"][0]["code"], "invalid_image_url");
    s.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn size_format_and_channels() {
    let s = TestServer::start().await;
    // 512x512 is over preview's 0.25 MP: sqrt(250000/262144) = 0.9766 -> 500x500.
    let img = fixture("astronaut.png");
    let a = send(removebg(&s).multipart(with_file(&img, &[]))).await;
    assert_eq!(a.status, 200);
    assert_eq!((a.header("x-width"), a.header("x-height")), ("500", "500"));
    let full =
        send(removebg(&s).multipart(with_file(&img, &[("size", "full"), ("format", "png")]))).await;
    assert_eq!(describe(&full.body).0, 512);
    let cut = cutout(&img).await;
    assert_eq!(full.rgba(), cut);

    // format=auto: PNG when anything is transparent, JPEG when the result is opaque.
    let transparent = cut.pixels().any(|p| p[3] < 255);
    let auto = send(removebg(&s).multipart(with_file(&img, &[("size", "full")]))).await;
    let want = if transparent {
        "image/png"
    } else {
        "image/jpeg"
    };
    assert_eq!(auto.header("content-type"), want);
    let opaque =
        send(removebg(&s).multipart(with_file(&img, &[("size", "full"), ("bg_color", "fff")])))
            .await;
    assert_eq!(opaque.header("content-type"), "image/jpeg");
    let webp = send(removebg(&s).multipart(with_file(&img, &[("format", "webp")]))).await;
    assert_eq!(webp.header("content-type"), "image/webp");

    // channels=alpha: the matte as one gray channel, equal to the cut-out's alpha.
    let m = send(removebg(&s).multipart(with_file(
        &img,
        &[("size", "full"), ("channels", "alpha"), ("format", "png")],
    )))
    .await;
    let (w, h, color) = describe(&m.body);
    assert_eq!((w, h, color), (512, 512, image::ColorType::L8));
    let gray = image::load_from_memory(&m.body).unwrap().to_luma8();
    for (x, y, p) in gray.enumerate_pixels() {
        assert_eq!(p[0], cut.get_pixel(x, y)[3], "({x},{y})");
    }
    s.server.shutdown().await.unwrap();
}

/// The entries of a ZIP, in order, by name.
fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a ZIP");
    (0..archive.len())
        .map(|i| {
            let mut entry = archive.by_index(i).unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            (entry.name().unwrap().into_owned(), data)
        })
        .collect()
}

#[tokio::test]
async fn format_zip_holds_color_jpg_and_alpha_png() {
    let s = TestServer::start().await;
    let img = fixture("astronaut.png");
    let cut = cutout(&img).await;
    let z =
        send(removebg(&s).multipart(with_file(&img, &[("size", "full"), ("format", "zip")]))).await;
    assert_eq!(z.status, 200, "{}", String::from_utf8_lossy(&z.body));
    assert_eq!(z.header("content-type"), "application/zip");
    assert_eq!((z.header("x-width"), z.header("x-height")), ("512", "512"));
    let entries = unzip(&z.body);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["color.jpg", "alpha.png"]);

    // alpha.png: the cut-out's matte exactly, one grey channel.
    let alpha = &entries[1].1;
    assert_eq!(describe(alpha), (512, 512, image::ColorType::L8));
    let alpha = image::load_from_memory(alpha).unwrap().to_luma8();
    for (x, y, p) in alpha.enumerate_pixels() {
        assert_eq!(p[0], cut.get_pixel(x, y)[3], "alpha at ({x},{y})");
    }
    // color.jpg: the cut-out's colours (RGB, not blended), within JPEG's loss.
    let color = &entries[0].1;
    assert_eq!(&color[..3], &[0xff, 0xd8, 0xff]);
    assert_eq!(describe(color), (512, 512, image::ColorType::Rgb8));
    let color = image::load_from_memory(color).unwrap().to_rgb8();
    let total: u64 = color
        .enumerate_pixels()
        .map(|(x, y, p)| {
            let c = cut.get_pixel(x, y);
            (0..3).map(|i| u64::from(p[i].abs_diff(c[i]))).sum::<u64>()
        })
        .sum();
    let mean = total as f64 / (512.0 * 512.0 * 3.0);
    assert!(mean < 3.0, "mean |color.jpg - cut-out RGB| = {mean}");

    // The default size (preview, 0.25 MP) applies to both entries; JSON wraps the ZIP.
    let z = send(
        removebg(&s)
            .header("Accept", "application/json")
            .multipart(with_file(&img, &[("format", "zip")])),
    )
    .await;
    assert_eq!(z.status, 200);
    let zipped = unb64(z.json()["data"]["result_b64"].as_str().unwrap());
    let entries = unzip(&zipped);
    assert_eq!(describe(&entries[0].1).0, 500);
    assert_eq!(describe(&entries[1].1).0, 500);

    // channels=alpha with zip: the matte alone, as the PNG alpha.png would hold.
    let m = send(removebg(&s).multipart(with_file(
        &img,
        &[("size", "full"), ("format", "zip"), ("channels", "alpha")],
    )))
    .await;
    assert_eq!(m.header("content-type"), "image/png");
    assert_eq!(describe(&m.body), (512, 512, image::ColorType::L8));
    s.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn backgrounds_colour_and_image() {
    let s = TestServer::start().await;
    let img = fixture("chelsea.png");
    let cut = cutout(&img).await;
    let red =
        send(removebg(&s).multipart(with_file(&img, &[("bg_color", "red"), ("format", "png")])))
            .await;
    assert_eq!(red.status, 200);
    let out = red.rgba();
    // The tiny model's alpha is partial everywhere: every pixel is a real blend.
    assert!(cut.pixels().all(|p| p[3] > 0 && p[3] < 255));
    for (x, y, p) in cut.enumerate_pixels() {
        assert_close(out.get_pixel(x, y).0, over_opaque(p.0, [255, 0, 0]), (x, y));
    }
    // A 2x1 background (blue | green) covers 451x300: scaled to 600x300 and centred, so the
    // left edge is blue and the right edge green.
    let mut bg = RgbaImage::new(2, 1);
    bg.put_pixel(0, 0, image::Rgba([0, 0, 255, 255]));
    bg.put_pixel(1, 0, image::Rgba([0, 255, 0, 255]));
    let mut png = std::io::Cursor::new(Vec::new());
    bg.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let form = with_file(&img, &[("format", "png")]).part(
        "bg_image_file",
        Part::bytes(png.into_inner()).file_name("bg.png"),
    );
    let a = send(removebg(&s).multipart(form)).await;
    assert_eq!(a.status, 200);
    let out = a.rgba();
    for y in [0, 150, 299] {
        let left = cut.get_pixel(0, y).0;
        assert_close(
            out.get_pixel(0, y).0,
            over_opaque(left, [0, 0, 255]),
            (0, y),
        );
        let right = cut.get_pixel(450, y).0;
        assert_close(
            out.get_pixel(450, y).0,
            over_opaque(right, [0, 255, 0]),
            (450, y),
        );
    }
    assert!(out.pixels().all(|p| p[3] == 255));
    s.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn crop_roi_scale_and_position() {
    let s = TestServer::start().await;
    let img = fixture("chelsea.png");
    // The ROI keeps only the top-left 100x50: nothing outside is subject.
    let a = send(removebg(&s).multipart(with_file(
        &img,
        &[("roi", "0px 0px 100px 50px"), ("format", "png")],
    )))
    .await;
    assert_eq!(a.status, 200);
    let out = a.rgba();
    let cut = cutout(&img).await;
    for (x, y, p) in out.enumerate_pixels() {
        if x >= 100 || y >= 50 {
            assert_eq!(p[3], 0, "({x},{y})");
        } else {
            assert_eq!(p.0, cut.get_pixel(x, y).0);
        }
    }
    // The ROI bounds the subject (the tiny model's alpha is non-zero everywhere): crop to it
    // with 10px top/bottom and 5px left/right margins.
    let roi = ("roi", "0px 0px 100px 50px");
    let a = send(removebg(&s).multipart(with_file(
        &img,
        &[
            roi,
            ("crop", "true"),
            ("crop_margin", "10px 5px"),
            ("format", "png"),
        ],
    )))
    .await;
    let out = a.rgba();
    assert_eq!(out.dimensions(), (100 + 10, 50 + 20));
    assert_eq!(out.get_pixel(5, 10).0, cut.get_pixel(0, 0).0);
    assert_eq!(out.get_pixel(104, 59).0, cut.get_pixel(99, 49).0);
    assert_eq!(out.get_pixel(4, 10)[3], 0);
    assert_eq!(out.get_pixel(5, 9)[3], 0);
    // crop_margin in %: of the subject's height (top/bottom) and width (left/right).
    let a = send(removebg(&s).multipart(with_file(
        &img,
        &[
            roi,
            ("crop", "true"),
            ("crop_margin", "10%"),
            ("format", "png"),
        ],
    )))
    .await;
    assert_eq!(a.rgba().dimensions(), (100 + 20, 50 + 10));

    // position=100% 100%: the 100x50 subject moves to the bottom-right corner, unscaled.
    let a = send(removebg(&s).multipart(with_file(
        &img,
        &[roi, ("position", "100% 100%"), ("format", "png")],
    )))
    .await;
    let out = a.rgba();
    assert_eq!(out.dimensions(), (451, 300));
    assert_eq!(bounds(&out), Some((351, 250, 100, 50)));
    assert_eq!(out.get_pixel(351, 250).0, cut.get_pixel(0, 0).0);
    assert_eq!(a.header("x-foreground-left"), "351");

    // scale=50% (position defaults to center): 100x50 fits in 225.5x150 at 2.255x -> 226x113,
    // at x = round((451-226)/2) = 113, y = round((300-113)/2) = 94.
    let a =
        send(removebg(&s).multipart(with_file(&img, &[roi, ("scale", "50%"), ("format", "png")])))
            .await;
    assert_eq!(a.status, 200);
    let out = a.rgba();
    assert_eq!(bounds(&out), Some((113, 94, 226, 113)));
    let data = send(
        removebg(&s)
            .header("accept", "application/json")
            .multipart(with_file(&img, &[roi, ("scale", "50%"), ("format", "png")])),
    )
    .await
    .json();
    assert_eq!(
        [
            &data["data"]["foreground_left"],
            &data["data"]["foreground_top"],
            &data["data"]["foreground_width"],
            &data["data"]["foreground_height"]
        ],
        [113, 94, 226, 113]
    );
    s.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn errors_have_remove_bg_codes_and_statuses() {
    let s = TestServer::start().await;
    let img = fixture("chelsea.png");
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("size", "huge")], "invalid_size"),
        (vec![("format", "gif")], "invalid_format"),
        (vec![("channels", "rgb")], "invalid_channels"),
        (vec![("bg_color", "notacolour")], "invalid_bg_color"),
        (
            vec![("bg_color", "fff"), ("bg_image_url", "http://x")],
            "multiple_bg_sources",
        ),
        (vec![("crop_margin", "1 2 3")], "invalid_crop_margin"),
        (vec![("scale", "200%")], "invalid_scale"),
        (vec![("position", "top")], "invalid_position"),
        (vec![("roi", "0 0 1")], "invalid_roi"),
        (vec![("roi", "0px 0px 1000px 10px")], "roi_exceeds_bounds"),
        (vec![("roi", "10px 10px 10px 20px")], "roi_region_empty"),
        (vec![("image_url", "http://x")], "multiple_sources"),
    ];
    for (fields, code) in cases {
        let a = send(removebg(&s).multipart(with_file(&img, &fields))).await;
        assert_eq!(a.status, 400, "{code}");
        let e = &a.json()["errors"][0];
        assert_eq!(e["code"], code);
        assert!(e["title"].is_string() && e["detail"].is_string(), "{e}");
    }
    let a = send(removebg(&s).form(&[("size", "preview")])).await;
    assert_eq!(
        (a.status, a.json()["errors"][0]["code"].as_str()),
        (400, Some("missing_source"))
    );
    let a = send(removebg(&s).multipart(with_file(b"not an image", &[]))).await;
    assert_eq!(
        (a.status, a.json()["errors"][0]["code"].as_str()),
        (400, Some("failed_to_read_image"))
    );
    let a = send(removebg(&s).header("content-type", "text/plain").body("x")).await;
    assert_eq!(a.status, 400);
    let a = send(
        removebg(&s)
            .header("content-type", "application/json")
            .body("{"),
    )
    .await;
    assert_eq!(a.status, 400);

    // Auth: this server has keys.
    let a = send(
        s.http
            .post(s.url("/v1.0/removebg"))
            .form(&[("image_file_b64", b64(&img))]),
    )
    .await;
    assert_eq!(a.status, 403);
    assert_eq!(a.json()["errors"][0]["title"], "Missing API Key");
    let a = send(
        s.http
            .post(s.url("/v1.0/removebg"))
            .header("X-Api-Key", "wrong")
            .form(&[("image_file_b64", b64(&img))]),
    )
    .await;
    assert_eq!(a.status, 403);
    assert_eq!(a.json()["errors"][0]["title"], "Authentication failed");
    let a = send(s.http.get(s.url("/v1.0/account"))).await;
    assert_eq!(a.status, 403);
    let a = send(s.http.get(s.url("/v1.0/account")).header("X-Api-Key", KEY)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["data"]["attributes"]["api"]["sizes"], "all");
    s.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_open_server_accepts_any_key() {
    let config = nobg_server::ServerConfig {
        api_keys: vec![],
        ..test_config()
    };
    let s = TestServer::with_config(config).await;
    let img = fixture("chelsea.png");
    let a = send(
        s.http
            .post(s.url("/v1.0/removebg"))
            .header("X-Api-Key", "anything")
            .multipart(with_file(&img, &[])),
    )
    .await;
    assert_eq!(a.status, 200);
    s.server.shutdown().await.unwrap();
}
