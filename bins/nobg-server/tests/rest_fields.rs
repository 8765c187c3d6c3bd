//! REST `POST /v1`: every removeBackground field, checked against the library's own output for
//! the same image and options.

mod common;

use common::*;
use nobg::{Background, OutputFormat, RemoveOptions};
use serde_json::json;

#[tokio::test]
async fn url_output_serves_the_library_result_with_the_documented_item() {
    let srv = TestServer::start().await;
    let img = fixture("chelsea.png");
    let task_uuid = new_uuid();
    let (status, body) = srv
        .post(json!([{"taskType":"removeBackground","taskUUID":task_uuid,"model":"runware:109@1",
            "inputs":{"image":data_uri(&img)},"outputType":"URL","outputFormat":"PNG","includeCost":true}]))
        .await;
    assert_eq!(status, 200, "{body}");
    let item = &body["data"][0];
    assert_eq!(item["taskType"], "removeBackground");
    assert_eq!(item["taskUUID"], task_uuid.as_str());
    assert_eq!(item["cost"], 0.0006);
    assert!(item.get("status").is_none(), "sync results carry no status");
    assert!(body.get("errors").is_none());
    let image_uuid = item["imageUUID"].as_str().unwrap();
    let url = item["imageURL"].as_str().unwrap();
    assert_eq!(url, srv.url(&format!("/image/{image_uuid}.png")));
    let (code, bytes) = srv.get_bytes(url).await;
    assert_eq!(code, 200);
    let expected = reference(
        &img,
        RemoveOptions {
            format: OutputFormat::Png,
            quality: Some(95),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        bytes, expected,
        "server output differs from Remover::remove"
    );
    let (w, h, color) = describe(&bytes);
    assert_eq!((w, h), (451, 300));
    assert!(color.has_alpha());

    // inputImageUUID is a stored copy of the input, usable as input itself.
    let input_uuid = item["inputImageUUID"].as_str().unwrap();
    let (status, body) = srv
        .post(json!([{"taskType":"imageBackgroundRemoval","taskUUID":new_uuid(),"inputImage":input_uuid,
            "outputType":"base64Data","outputFormat":"png"}]))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["taskType"], "imageBackgroundRemoval");
    assert_eq!(body["data"][0]["inputImageUUID"], input_uuid);
    assert_eq!(
        unb64(body["data"][0]["imageBase64Data"].as_str().unwrap()),
        expected
    );
    srv.stop().await;
}

#[tokio::test]
async fn output_types_formats_and_quality() {
    let srv = TestServer::start().await;
    let img = fixture("coffee.png");
    let raw = b64(&img);

    // Default format is JPG (the seed page), quality 95: flattened onto white.
    let (_, body) = srv
        .post(json!([{"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":raw,"outputType":"dataURI"}]))
        .await;
    let uri = body["data"][0]["imageDataURI"].as_str().unwrap();
    let payload = uri
        .strip_prefix("data:image/jpeg;base64,")
        .expect("JPEG data URI");
    let jpg = unb64(payload);
    assert_eq!(
        jpg,
        reference(
            &img,
            RemoveOptions {
                format: OutputFormat::Jpeg,
                quality: Some(95),
                ..Default::default()
            }
        )
        .await
    );
    assert_eq!(describe(&jpg), (600, 400, image::ColorType::Rgb8));

    // WEBP, lowercase, quality passed through.
    let (_, body) = srv
        .post(
            json!([{"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":raw,
            "outputType":"base64Data","outputFormat":"webp","outputQuality":40}]),
        )
        .await;
    let webp = unb64(body["data"][0]["imageBase64Data"].as_str().unwrap());
    assert_eq!(
        webp,
        reference(
            &img,
            RemoveOptions {
                format: OutputFormat::Webp,
                quality: Some(40),
                ..Default::default()
            }
        )
        .await
    );
    assert_eq!(
        image::guess_format(&webp).unwrap(),
        image::ImageFormat::WebP
    );

    // JPG at quality 20 is a different (smaller) file than at 99.
    let jpg_at = |q: u8| {
        reference(
            &img,
            RemoveOptions {
                format: OutputFormat::Jpeg,
                quality: Some(q),
                ..Default::default()
            },
        )
    };
    let (_, body) = srv
        .post(
            json!([{"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":raw,
            "outputType":"base64Data","outputFormat":"JPG","outputQuality":20}]),
        )
        .await;
    let low = unb64(body["data"][0]["imageBase64Data"].as_str().unwrap());
    assert_eq!(low, jpg_at(20).await);
    assert!(low.len() < jpg_at(99).await.len());
    srv.stop().await;
}

#[tokio::test]
async fn settings_nested_or_flat_and_provider_settings_reach_the_pipeline() {
    let srv = TestServer::start().await;
    let img = transparent_logo();
    let raw = b64(&img);
    let expected_mask = reference(
        &img,
        RemoveOptions {
            only_mask: true,
            format: OutputFormat::Png,
            ..Default::default()
        },
    )
    .await;
    let expected_rgba = reference(
        &img,
        RemoveOptions {
            format: OutputFormat::Png,
            background: Background::Rgba([255, 0, 0, 255]),
            post_process_mask: true,
            alpha_matting: Some(nobg::AlphaMattingParams {
                foreground_threshold: 200,
                background_threshold: 20,
                erode_size: 5,
            }),
            preserve_alpha: true,
            ..Default::default()
        },
    )
    .await;

    let nested = json!({"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":raw,"outputType":"base64Data",
        "outputFormat":"PNG","settings":{"returnOnlyMask":true}});
    let flat = json!({"taskType":"imageBackgroundRemoval","taskUUID":new_uuid(),"inputImage":raw,"outputType":"base64Data",
        "outputFormat":"PNG","returnOnlyMask":true,"alphaMatting":false,"postProcessMask":false});
    let full = json!({"taskType":"removeBackground","taskUUID":new_uuid(),"inputs":{"image":raw},"model":"bria:2@1",
        "outputType":"base64Data","outputFormat":"PNG","providerSettings":{"bria":{"preserveAlpha":true}},
        "settings":{"rgba":[255,0,0,1],"postProcessMask":true,"alphaMatting":true,
            "alphaMattingForegroundThreshold":200,"alphaMattingBackgroundThreshold":20,"alphaMattingErodeSize":5}});
    let (status, body) = srv.post(json!([nested, flat, full])).await;
    assert_eq!(status, 200, "{body}");
    let out = |i: usize| unb64(body["data"][i]["imageBase64Data"].as_str().unwrap());
    // Batch answers keep request order.
    assert_eq!(out(0), expected_mask);
    assert_eq!(out(1), expected_mask);
    assert_eq!(describe(&out(0)).2, image::ColorType::L8);
    assert_eq!(out(2), expected_rgba);
    // preserveAlpha: the input's transparent left third shows only the red background.
    let full = image::load_from_memory(&out(2)).unwrap().to_rgba8();
    for y in (0..full.height()).step_by(50) {
        assert_eq!(full.get_pixel(10, y).0, [255, 0, 0, 255]);
    }
    srv.stop().await;
}

#[tokio::test]
async fn inputs_by_url_upload_uuid_and_previous_output() {
    let img = fixture("rocket.jpg");
    let origin = Receiver::start(0, Some(img.clone())).await;
    let srv = TestServer::start().await;

    // imageUpload answers imageUUID and imageURL; the URL serves the same bytes.
    let upload_uuid = new_uuid();
    let (status, body) = srv
        .post(json!([{"taskType":"imageUpload","taskUUID":upload_uuid,"image":format!("data:image/jpeg;base64,{}", b64(&img))}]))
        .await;
    assert_eq!(status, 200, "{body}");
    let item = &body["data"][0];
    assert_eq!(item["taskType"], "imageUpload");
    assert_eq!(item["taskUUID"], upload_uuid.as_str());
    let uploaded = item["imageUUID"].as_str().unwrap().to_owned();
    assert_eq!(
        srv.get_bytes(item["imageURL"].as_str().unwrap()).await,
        (200, img.clone())
    );

    let expected = reference(
        &img,
        RemoveOptions {
            format: OutputFormat::Png,
            quality: Some(95),
            ..Default::default()
        },
    )
    .await;
    let by_url = json!({"taskType":"removeBackground","taskUUID":new_uuid(),"inputs":{"image":origin.url("/photo.jpg")},
        "outputType":"base64Data","outputFormat":"PNG"});
    let by_uuid = json!({"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":uploaded,
        "outputType":"base64Data","outputFormat":"PNG"});
    let (status, body) = srv.post(json!([by_url, by_uuid])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(origin.next().await.path, "/photo.jpg");
    assert_eq!(
        unb64(body["data"][0]["imageBase64Data"].as_str().unwrap()),
        expected
    );
    assert_eq!(
        unb64(body["data"][1]["imageBase64Data"].as_str().unwrap()),
        expected
    );
    assert_eq!(body["data"][1]["inputImageUUID"], uploaded.as_str());

    // A previous output is an input too.
    let previous = body["data"][0]["imageUUID"].as_str().unwrap();
    let (status, body) = srv
        .post(json!([{"taskType":"removeBackground","taskUUID":new_uuid(),"inputImage":previous,"outputFormat":"PNG"}]))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["inputImageUUID"], previous);
    srv.stop().await;
}

#[tokio::test]
async fn payload_authentication_and_legacy_name_answer_no_auth_item() {
    let srv = TestServer::start().await;
    let raw = b64(&fixture("chelsea.png"));
    let task_uuid = new_uuid();
    let (status, body) = srv
        .post_with_key(
            json!([{"taskType":"authentication","apiKey":KEY},
                   {"taskType":"imageBackgroundRemoval","taskUUID":task_uuid,"inputImage":raw,"rgba":[255,255,255,0],"alphaMatting":true}]),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "no item for the authentication element");
    assert_eq!(data[0]["taskType"], "imageBackgroundRemoval");
    assert_eq!(data[0]["taskUUID"], task_uuid.as_str());
    assert!(data[0]["imageURL"].as_str().unwrap().ends_with(".jpg"));

    // Key check alone (ComfyUI's checkAPIKey): no errors key.
    let (status, body) = srv
        .post_with_key(json!([{"taskType":"authentication","apiKey":KEY}]), None)
        .await;
    assert_eq!((status, body), (200, json!({"data":[]})));
    srv.stop().await;
}
