//! A backend that needs no model: for router tests that check protocol, not pixels.
//!
//! It decodes the input with `image` (so bad bytes fail as they would for real), keeps the
//! pixels, sets alpha to 255 and encodes in the requested format; or answers a scripted error.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use image::{DynamicImage, GrayImage, ImageFormat};
use nobg::{ModelInfo, ModelSpec, NobgError, OutputFormat, RemoveOptions, RemoveOutput, Stats};

use super::{Backend, RemoveFuture};

/// What the fake does with each request.
#[derive(Debug, Default)]
pub struct FakeBackend {
    /// Errors to return, first in first out, before working normally.
    pub scripted_errors: Mutex<Vec<NobgError>>,
    /// How long each removal takes.
    pub delay: Duration,
    /// Options of every call, in order.
    pub calls: Mutex<Vec<RemoveOptions>>,
    pub removals: AtomicU64,
    /// How many of the next removals panic (a fault in the model worker), after the delay.
    pub panics: AtomicU64,
}

impl FakeBackend {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn with_delay(delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            delay,
            ..Self::default()
        })
    }

    pub fn push_error(&self, err: NobgError) {
        if let Ok(mut errors) = self.scripted_errors.lock() {
            errors.push(err);
        }
    }
}

impl Backend for Arc<FakeBackend> {
    fn remove(&self, image: Vec<u8>, options: RemoveOptions) -> RemoveFuture {
        let this = Arc::clone(self);
        Box::pin(async move {
            if let Ok(mut calls) = this.calls.lock() {
                calls.push(options.clone());
            }
            if !this.delay.is_zero() {
                tokio::time::sleep(this.delay).await;
            }
            let scripted = this
                .scripted_errors
                .lock()
                .ok()
                .and_then(|mut e| (!e.is_empty()).then(|| e.remove(0)));
            if let Some(err) = scripted {
                return Err(err);
            }
            let panic_now = this
                .panics
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if panic_now {
                panic!("fake backend: injected fault");
            }
            this.removals.fetch_add(1, Ordering::Relaxed);
            let decoded =
                image::load_from_memory(&image).map_err(|e| NobgError::Decode(e.to_string()))?;
            let cutout = decoded.to_rgba8();
            let (width, height) = cutout.dimensions();
            let mask = GrayImage::from_pixel(width, height, image::Luma([255]));
            let mut encoded = Vec::new();
            let target = match options.format {
                OutputFormat::Png => ImageFormat::Png,
                OutputFormat::Webp => ImageFormat::WebP,
                OutputFormat::Jpeg => ImageFormat::Jpeg,
            };
            let to_encode = if options.only_mask {
                DynamicImage::ImageLuma8(mask.clone())
            } else if options.format == OutputFormat::Jpeg {
                DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(cutout.clone()).to_rgb8())
            } else {
                DynamicImage::ImageRgba8(cutout.clone())
            };
            let written = match (target, options.quality) {
                (ImageFormat::Jpeg, Some(q)) => to_encode.write_with_encoder(
                    image::codecs::jpeg::JpegEncoder::new_with_quality(
                        &mut Cursor::new(&mut encoded),
                        q,
                    ),
                ),
                _ => to_encode.write_to(&mut Cursor::new(&mut encoded), target),
            };
            written.map_err(|e| NobgError::Inference(e.to_string()))?;
            Ok(RemoveOutput {
                encoded,
                format: options.format,
                width,
                height,
                mask,
                cutout,
            })
        })
    }

    fn models(&self) -> Vec<ModelInfo> {
        vec![ModelInfo {
            // Named like the test model, so AIR maps written for it work with the fake too.
            name: "tiny".into(),
            config: "tiny".into(),
            spec: ModelSpec::Synthetic {
                config: "tiny".into(),
                seed: 0,
            },
            input_size: (32, 32),
            is_default: true,
        }]
    }

    fn stats(&self) -> Stats {
        Stats { models: Vec::new() }
    }

    fn shutdown(&self) {}
}
