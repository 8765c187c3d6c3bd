//! Devices and dtypes by name, as the CLI and the server take them.

use candle_core::{DType, Device};

use crate::{Error, Result};

/// `cpu`, `cuda`, `cuda:N`, `metal` or `metal:N`. A GPU name fails with Candle's message when
/// the crate was built without the matching feature or no such device exists.
pub fn parse_device(name: &str) -> Result<Device> {
    let name = name.trim().to_ascii_lowercase();
    let (kind, ordinal) = match name.split_once(':') {
        Some((kind, n)) => (
            kind.to_string(),
            n.parse::<usize>()
                .map_err(|_| Error::UnknownDevice(name.clone()))?,
        ),
        None => (name.clone(), 0),
    };
    match kind.as_str() {
        "cpu" => Ok(Device::Cpu),
        "cuda" | "gpu" => Ok(Device::new_cuda(ordinal)?),
        "metal" => Ok(Device::new_metal(ordinal)?),
        _ => Err(Error::UnknownDevice(name)),
    }
}

/// `f32`, `f16` or `bf16`.
pub fn parse_dtype(name: &str) -> Result<DType> {
    match name.trim().to_ascii_lowercase().as_str() {
        "f32" | "fp32" | "float32" => Ok(DType::F32),
        "f16" | "fp16" | "float16" | "half" => Ok(DType::F16),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        other => Err(Error::UnknownDtype(other.to_string())),
    }
}

/// The dtype to run in when the user does not say: f32 on CPU (reduced-precision matmuls are
/// slow there), f16 on GPUs.
pub fn default_dtype(device: &Device) -> DType {
    if device.is_cpu() {
        DType::F32
    } else {
        DType::F16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_unknown_ones_are_errors() {
        assert!(parse_device("cpu").map(|d| d.is_cpu()).unwrap_or(false));
        assert!(matches!(parse_device("tpu"), Err(Error::UnknownDevice(_))));
        assert!(matches!(
            parse_device("cuda:x"),
            Err(Error::UnknownDevice(_))
        ));
        assert_eq!(parse_dtype("BF16").ok(), Some(DType::BF16));
        assert!(parse_dtype("f8").is_err());
    }
}
