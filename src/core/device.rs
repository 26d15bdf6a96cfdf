//! Where the model runs: `--device cpu|cuda[:N]` (or `GYM_DEVICE`) parsed into a [`DeviceSpec`],
//! opened into a candle [`Device`] in one place, and described ([`DeviceInfo`]) for the compute
//! record of each delta and for `metrics.jsonl`.
//!
//! A build without the `cuda` feature, or a machine without a usable GPU, gets a
//! [`DeviceError`] of class [`ErrorClass::Device`] naming the device asked for; a spelling that
//! is no device at all is a usage error.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;

use super::error::{Classify, ErrorClass};

/// A device as the user names it: `cpu`, `cuda` (GPU 0) or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    /// A CUDA GPU by its index (as `nvidia-smi` numbers them under `CUDA_VISIBLE_DEVICES`).
    Cuda(usize),
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("bad device {spec:?}: {reason} (expected cpu, cuda or cuda:N)")]
    BadSpec { spec: String, reason: String },
    #[error(
        "device {spec} is not available: this gym was built without CUDA support (rebuild with `cargo build --release --features cuda`, or use --device cpu)"
    )]
    CudaNotBuilt { spec: DeviceSpec },
    #[error("device {spec} is not available: {reason}")]
    CudaUnavailable { spec: DeviceSpec, reason: String },
}

impl Classify for DeviceError {
    fn class(&self) -> ErrorClass {
        match self {
            DeviceError::BadSpec { .. } => ErrorClass::Usage,
            DeviceError::CudaNotBuilt { .. } | DeviceError::CudaUnavailable { .. } => {
                ErrorClass::Device
            }
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, DeviceError> {
        let bad = |reason: &str| DeviceError::BadSpec {
            spec: s.to_string(),
            reason: reason.to_string(),
        };
        let t = s.trim();
        match t {
            "cpu" => return Ok(DeviceSpec::Cpu),
            "cuda" => return Ok(DeviceSpec::Cuda(0)),
            "" => return Err(bad("empty")),
            _ => {}
        }
        let Some(index) = t.strip_prefix("cuda:") else {
            return Err(bad("unknown device"));
        };
        if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the GPU index must be a number (cuda:0, cuda:1, …)"));
        }
        index
            .parse::<u16>()
            .map(|n| DeviceSpec::Cuda(usize::from(n)))
            .map_err(|_| bad("GPU index out of range"))
    }
}

impl DeviceSpec {
    /// `--device`'s clap value parser: the [`DeviceError::BadSpec`] message.
    pub fn parse_arg(s: &str) -> Result<Self, String> {
        s.parse().map_err(|e: DeviceError| e.to_string())
    }

    /// Opens the device: the CPU always; a GPU only in a `cuda` build on a machine that has it.
    pub fn open(self) -> Result<Device, DeviceError> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => open_cuda(self, n),
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(spec: DeviceSpec, _ordinal: usize) -> Result<Device, DeviceError> {
    Err(DeviceError::CudaNotBuilt { spec })
}

/// cudarc loads libcuda at first use and panics when it is missing (a machine without an NVIDIA
/// driver); that panic becomes [`DeviceError::CudaUnavailable`] instead of a crash.
#[cfg(feature = "cuda")]
fn open_cuda(spec: DeviceSpec, ordinal: usize) -> Result<Device, DeviceError> {
    use candle_core::cuda_backend::cudarc::driver::CudaContext;
    let unavailable = |reason: String| DeviceError::CudaUnavailable { spec, reason };
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let count = std::panic::catch_unwind(CudaContext::device_count);
    std::panic::set_hook(hook);
    let count = match count {
        Ok(Ok(c)) => usize::try_from(c).unwrap_or(0),
        Ok(Err(e)) => return Err(unavailable(format!("the CUDA driver failed: {e}"))),
        Err(_) => {
            return Err(unavailable(
                "no CUDA driver (libcuda) on this machine".into(),
            ));
        }
    };
    if ordinal >= count {
        return Err(unavailable(format!(
            "this machine has {count} CUDA GPU(s) (numbered from 0)"
        )));
    }
    Device::new_cuda(ordinal).map_err(|e| unavailable(e.to_string()))
}

/// What a run reports about its device.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeviceInfo {
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// The CPU model (from /proc/cpuinfo) or the GPU's name; empty when unknown.
    pub name: String,
    /// The GPU's memory; `None` on the CPU.
    pub memory_bytes: Option<u64>,
    /// On the CPU, what runs the large matrix products ([`crate::core::blas::describe`]).
    pub products: Option<String>,
}

impl DeviceInfo {
    /// Describes an opened device.
    pub fn of(dev: &Device) -> Self {
        match dev {
            Device::Cuda(_) => cuda_info(dev),
            _ => DeviceInfo {
                device: "cpu".into(),
                name: cpu_model().unwrap_or_default(),
                memory_bytes: None,
                products: Some(crate::core::blas::describe()),
            },
        }
    }

    /// One line for the compute record: `cpu (AMD EPYC 7B13, OpenBLAS 0.3.21 Zen)`,
    /// `cuda:0 (NVIDIA H100 80GB HBM3, 79.2 GiB)`.
    pub fn label(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if !self.name.is_empty() {
            parts.push(self.name.clone());
        }
        if let Some(b) = self.memory_bytes {
            parts.push(format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64));
        }
        parts.extend(self.products.clone());
        match parts.is_empty() {
            true => self.device.clone(),
            false => format!("{} ({})", self.device, parts.join(", ")),
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda_info(_dev: &Device) -> DeviceInfo {
    unreachable!("a build without the cuda feature cannot open a CUDA device")
}

#[cfg(feature = "cuda")]
fn cuda_info(dev: &Device) -> DeviceInfo {
    let Ok(cuda) = dev.as_cuda_device() else {
        unreachable!("cuda_info is called on CUDA devices only")
    };
    let stream = cuda.cuda_stream();
    let ctx = stream.context();
    DeviceInfo {
        device: format!("cuda:{}", ctx.ordinal()),
        name: ctx.name().unwrap_or_default(),
        memory_bytes: ctx.total_mem().ok().map(|b| b as u64),
        products: None,
    }
}

/// The first `model name` of /proc/cpuinfo (Linux), if any.
fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    parse_cpu_model(&text)
}

fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
        (k.trim() == "model name" && !v.is_empty()).then_some(v)
    })
}

/// The device of the parity tests: `GYM_TEST_DEVICE` (tools/gpu-check.sh sets `cuda:0`),
/// else the CPU, so the same comparisons run in every build.
#[cfg(test)]
pub(crate) fn test_device() -> Device {
    let spec = std::env::var("GYM_TEST_DEVICE").unwrap_or_else(|_| "cpu".into());
    let spec: DeviceSpec = spec.parse().unwrap();
    spec.open().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_spellings() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:0".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        for s in ["cpu", "cuda:0", "cuda:7"] {
            assert_eq!(s.parse::<DeviceSpec>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn refuses_other_spellings_as_usage_errors() {
        for s in [
            "",
            "gpu",
            "CUDA",
            "cuda:",
            "cuda:x",
            "cuda:-1",
            "cuda:+1",
            "cuda:1.0",
            "metal",
            "cuda:99999",
            "cpu:0",
        ] {
            let e = s.parse::<DeviceSpec>().unwrap_err();
            assert_eq!(e.class(), ErrorClass::Usage, "{s:?}");
            assert!(e.to_string().contains(&format!("{s:?}")), "{e}");
        }
    }

    #[test]
    fn the_cpu_opens_and_is_described() {
        let dev = DeviceSpec::Cpu.open().unwrap();
        assert!(dev.is_cpu());
        let info = DeviceInfo::of(&dev);
        assert_eq!(info.device, "cpu");
        assert_eq!(info.memory_bytes, None);
        assert!(info.label().starts_with("cpu"));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn a_cpu_only_build_refuses_cuda_with_the_device_class() {
        let e = DeviceSpec::Cuda(1).open().unwrap_err();
        assert_eq!(e.class(), ErrorClass::Device);
        assert!(e.to_string().contains("cuda:1"), "{e}");
        assert!(e.to_string().contains("--features cuda"), "{e}");
    }

    fn td(rel: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(rel)
    }

    fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
        let a = a.to_device(&Device::Cpu).unwrap();
        let b = b.to_device(&Device::Cpu).unwrap();
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// Logits of the tiny Qwen3 on the test device, with and without its PEFT adapter, against
    /// the transformers + peft references (tools/reference/logits.py), f32: |Δ| ≤ 2e-4 (the CPU
    /// path meets 1e-4; a GPU sums in another order).
    #[test]
    fn logits_on_the_test_device_match_transformers() {
        use crate::core::model::{self, lora};
        let dev = test_device();
        let r =
            candle_core::safetensors::load(td("model-ref/tiny-qwen3.safetensors"), &dev).unwrap();
        let u32s = |k: &str| r[k].to_dtype(candle_core::DType::U32).unwrap();
        let (ids, pos, keep) = (u32s("ids"), u32s("positions"), u32s("keep"));
        let kf = r["keep"]
            .to_dtype(candle_core::DType::F32)
            .unwrap()
            .unsqueeze(2)
            .unwrap();
        let mut m = model::load(&td("tiny-qwen3"), &dev).unwrap();
        lora::load_peft(&mut m, &td("tiny-qwen3-lora")).unwrap();
        for (adapters, key) in [
            (model::Role::Reference, "logits"),
            (model::Role::Policy, "logits_lora"),
        ] {
            let l = m.forward(&ids, &pos, Some(&keep), adapters).unwrap();
            assert!(l.device().same_device(&dev));
            let want = r[key].broadcast_mul(&kf).unwrap();
            let d = max_abs_diff(&l.broadcast_mul(&kf).unwrap(), &want);
            assert!(d <= 2e-4, "{key} on {dev:?}: max |Δ| = {d}");
        }
    }

    /// The LoRA gradients of Σ logits ⊙ w over an NF4 base on the test device equal the CPU
    /// path's: max |Δ| ≤ 1e-3 × max |g| per factor (f32 factors and gradients on both).
    #[test]
    fn lora_gradients_on_the_test_device_match_the_cpu() {
        fn grads(dev: &Device) -> Vec<(String, candle_core::Tensor)> {
            use crate::core::model::{self, lora};
            let mut m = model::load(&td("tiny-qwen3"), dev).unwrap();
            m.quantize_nf4(true).unwrap();
            lora::load_peft(&mut m, &td("tiny-qwen3-lora")).unwrap();
            let ids = candle_core::Tensor::new(&[[5u32, 6, 7, 8, 9, 10], [11, 3, 3, 4, 0, 0]], dev)
                .unwrap();
            let pos = candle_core::Tensor::new(&[[0u32, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5]], dev)
                .unwrap();
            let keep = candle_core::Tensor::new(&[[1u32, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], dev)
                .unwrap();
            let l = m
                .forward(&ids, &pos, Some(&keep), model::Role::Policy)
                .unwrap();
            let n = l.elem_count();
            let w: Vec<f32> = (0..n)
                .map(|i| ((i * 7919) % 997) as f32 / 997.0 - 0.5)
                .collect();
            let w = candle_core::Tensor::from_vec(w, l.dims(), dev).unwrap();
            let g = (l * w).unwrap().sum_all().unwrap().backward().unwrap();
            crate::core::model::lora::trainable(&m)
                .into_iter()
                .map(|(name, v)| (name, g.get(v.as_tensor()).unwrap().clone()))
                .collect()
        }
        let dev = test_device();
        let on_dev = grads(&dev);
        let on_cpu = grads(&Device::Cpu);
        assert!(!on_cpu.is_empty());
        assert_eq!(on_dev.len(), on_cpu.len());
        for ((name, a), (name_b, b)) in on_dev.iter().zip(&on_cpu) {
            assert_eq!(name, name_b);
            let scale = max_abs_diff(b, &b.zeros_like().unwrap());
            assert!(scale > 0.0, "{name}: zero gradient");
            let d = max_abs_diff(a, b);
            assert!(
                d <= 1e-3 * scale,
                "{name} on {dev:?}: max |Δ| = {d}, max |g| = {scale}"
            );
        }
    }

    #[test]
    fn reads_the_cpu_model_and_labels() {
        let text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD  EPYC 7B13 64-Core Processor\n";
        assert_eq!(
            parse_cpu_model(text).as_deref(),
            Some("AMD EPYC 7B13 64-Core Processor")
        );
        assert_eq!(parse_cpu_model("processor : 0\n"), None);
        let gpu = DeviceInfo {
            device: "cuda:0".into(),
            name: "NVIDIA H100 80GB HBM3".into(),
            memory_bytes: Some(85_520_809_984),
            products: None,
        };
        assert_eq!(gpu.label(), "cuda:0 (NVIDIA H100 80GB HBM3, 79.6 GiB)");
        let bare = DeviceInfo {
            device: "cpu".into(),
            name: String::new(),
            memory_bytes: None,
            products: None,
        };
        assert_eq!(bare.label(), "cpu");
        let cpu = DeviceInfo {
            device: "cpu".into(),
            name: "AMD EPYC 7B13".into(),
            memory_bytes: None,
            products: Some("OpenBLAS 0.3.21 Zen".into()),
        };
        assert_eq!(cpu.label(), "cpu (AMD EPYC 7B13, OpenBLAS 0.3.21 Zen)");
    }
}
