//! [`NobgError`] as a Runware task error: each variant its own code and HTTP status.

use nobg::NobgError;
use nobg_api::TaskError;

/// `input_parameter` names the image parameter for decode and size errors.
pub fn task_error(err: &NobgError, input_parameter: &str) -> TaskError {
    match err {
        NobgError::QueueFull { .. } => TaskError::new(
            "rateLimitExceeded",
            format!("The server is busy: {err}. Retry later."),
            429,
        ),
        NobgError::InvalidInput(msg) => {
            TaskError::new("validationFailed", format!("Invalid request: {msg}."), 400)
        }
        NobgError::Decode(msg) => input_error(
            input_parameter,
            &format!("The image cannot be decoded: {msg}."),
            400,
        ),
        NobgError::TooLarge(msg) => TaskError::new(
            "valueTooLarge",
            format!("The image is too large: {msg}."),
            413,
        )
        .with_parameter(input_parameter, "string"),
        NobgError::UnknownModel { name, available } => {
            TaskError::invalid("model", "string", &format!("Model '{name}' is not loaded."))
                .with_allowed_values(available.clone())
        }
        NobgError::Inference(_) | NobgError::Load(_) => {
            tracing::error!(error = %err, "inference failed");
            TaskError::new("inferenceError", "Inference failed on the server.", 500)
        }
        NobgError::ShuttingDown => {
            TaskError::new("serviceUnavailable", "The server is shutting down.", 503)
        }
        NobgError::Timeout(limit) => TaskError::new(
            "timeout",
            format!("The task did not finish within {limit:?}."),
            504,
        ),
    }
}

/// `invalidInputImage` (or `invalidImage` for uploads) naming the parameter the image came in.
pub fn input_error(parameter: &str, why: &str, http_status: u16) -> TaskError {
    let mut err = TaskError::invalid(parameter, "string", why);
    if parameter.starts_with("input") {
        err.code = "invalidInputImage".to_owned();
    }
    err.http_status = http_status;
    err
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn each_variant_has_its_status() {
        let cases: [(NobgError, &str, u16); 7] = [
            (
                NobgError::QueueFull {
                    model: "m".into(),
                    capacity: 1,
                },
                "rateLimitExceeded",
                429,
            ),
            (NobgError::InvalidInput("x".into()), "validationFailed", 400),
            (NobgError::Decode("x".into()), "invalidInputImage", 400),
            (NobgError::TooLarge("x".into()), "valueTooLarge", 413),
            (NobgError::Inference("x".into()), "inferenceError", 500),
            (NobgError::ShuttingDown, "serviceUnavailable", 503),
            (NobgError::Timeout(Duration::from_secs(1)), "timeout", 504),
        ];
        for (err, code, status) in cases {
            let t = task_error(&err, "inputs.image");
            assert_eq!((t.code.as_str(), t.http_status), (code, status), "{err}");
        }
        let t = task_error(&NobgError::Decode("bad".into()), "inputs.image");
        assert_eq!(t.parameter.as_deref(), Some("inputs.image"));
    }

    #[test]
    fn inference_details_stay_in_the_log() {
        let t = task_error(
            &NobgError::Inference("CUDA_ERROR_OUT_OF_MEMORY at 0xdeadbeef".into()),
            "inputImage",
        );
        assert!(!t.message.contains("deadbeef"));
    }
}
