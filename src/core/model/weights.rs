//! The tensors of a Hugging Face model folder: `model.safetensors`, or the shards listed by
//! `model.safetensors.index.json`. Every tensor is converted to f32 on load (f32, f16 and bf16
//! checkpoints are accepted); a lookup checks the shape and names the tensor when it is wrong.
//!
//! A model folder is read tensor by tensor (header first, then each tensor's bytes), so the
//! checkpoint file is never resident as a whole. With [`LoadOptions::nf4`] the weights of the
//! linear layers are quantized to NF4 as they are read, so at most one of them exists in f32
//! at a time.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use super::linear::Base;
use super::nf4::Nf4Tensor;
use super::{LoadOptions, ModelError};

pub struct Weights {
    tensors: HashMap<String, Tensor>,
    /// Linear-layer weights quantized while loading (see [`LoadOptions::nf4`]).
    nf4: HashMap<String, Arc<Nf4Tensor>>,
    /// The folder they came from, for messages.
    pub dir: PathBuf,
}

fn read(path: &Path) -> Result<Vec<u8>, ModelError> {
    std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ModelError::MissingFile {
                path: path.to_path_buf(),
            }
        } else {
            ModelError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

fn load_file(
    path: &Path,
    dev: &Device,
    out: &mut HashMap<String, Tensor>,
) -> Result<(), ModelError> {
    let bytes = read(path)?;
    load_bytes(&bytes, path, dev, out)
}

fn load_bytes(
    bytes: &[u8],
    path: &Path,
    dev: &Device,
    out: &mut HashMap<String, Tensor>,
) -> Result<(), ModelError> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| ModelError::Weights {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    for (name, view) in st.tensors() {
        let t = to_f32(&view, &name, path, dev)?;
        out.insert(name, t);
    }
    Ok(())
}

/// One stored tensor as f32.
fn to_f32(
    view: &safetensors::tensor::TensorView<'_>,
    name: &str,
    path: &Path,
    dev: &Device,
) -> Result<Tensor, ModelError> {
    let t = candle_core::safetensors::Load::load(view, dev).map_err(|e| ModelError::Weights {
        path: path.to_path_buf(),
        reason: format!("tensor {name}: {e}"),
    })?;
    Ok(match t.dtype() {
        DType::F32 => t,
        DType::F16 | DType::BF16 | DType::F64 => t.to_dtype(DType::F32)?,
        other => {
            return Err(ModelError::Unsupported(format!(
                "tensor {name} in {} has dtype {other:?} (f32, f16 or bf16 expected)",
                path.display()
            )));
        }
    })
}

/// Whether `name` is the weight of a linear layer that an NF4 base replaces (attention and
/// MLP projections, dense or per expert, Mixtral's `experts.{e}.w1/w2/w3`; not the MoE
/// router, norms, embedding or LM head).
pub fn is_linear_weight(name: &str) -> bool {
    ["q", "k", "v", "o", "gate", "up", "down"]
        .iter()
        .any(|p| name.ends_with(&format!(".{p}_proj.weight")))
        || (name.contains(".linear_attn.")
            && [
                ".in_proj_qkvz.weight",
                ".in_proj_ba.weight",
                ".out_proj.weight",
            ]
            .iter()
            .any(|s| name.ends_with(s)))
        || (name.contains(".experts.")
            && [".w1.weight", ".w2.weight", ".w3.weight"]
                .iter()
                .any(|s| name.ends_with(s)))
}

/// Where loaded tensors go: f32 tensors, and linear weights quantized on the way when asked.
struct Sink<'a> {
    f32: &'a mut HashMap<String, Tensor>,
    nf4: &'a mut HashMap<String, Arc<Nf4Tensor>>,
    opts: LoadOptions,
}

impl Sink<'_> {
    fn put(&mut self, name: String, t: Tensor) -> Result<(), ModelError> {
        if self.opts.nf4 && t.rank() == 2 && is_linear_weight(&name) {
            let q = Nf4Tensor::quantize(&t, self.opts.double_quant)?;
            drop(t);
            self.nf4.insert(name, Arc::new(q));
        } else {
            self.f32.insert(name, t);
        }
        Ok(())
    }

    fn contains(&self, name: &str) -> bool {
        self.f32.contains_key(name) || self.nf4.contains_key(name)
    }
}

/// Reads a safetensors file tensor by tensor: the header, then each tensor's bytes, converted
/// (and quantized, see [`Sink`]) before the next is read.
fn stream_file(path: &Path, dev: &Device, sink: &mut Sink) -> Result<(), ModelError> {
    let io = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ModelError::MissingFile {
                path: path.to_path_buf(),
            }
        } else {
            ModelError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let bad = |reason: String| ModelError::Weights {
        path: path.to_path_buf(),
        reason,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let file_len = f.metadata().map_err(io)?.len();
    let mut n8 = [0u8; 8];
    f.read_exact(&mut n8)
        .map_err(|_| bad("header too small".into()))?;
    let n = u64::from_le_bytes(n8);
    // safetensors' own limit on the header
    if n > 100_000_000 || n + 8 > file_len {
        return Err(bad(format!("invalid header length {n}")));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(io)?;
    let header = std::str::from_utf8(&header).map_err(|e| bad(format!("header: {e}")))?;
    let meta: safetensors::tensor::Metadata =
        serde_json::from_str(header).map_err(|e| bad(format!("header: {e}")))?;
    let data_start = 8 + n;
    if data_start + meta.data_len() as u64 != file_len {
        return Err(bad(format!(
            "the header describes {} bytes of data, the file holds {}",
            meta.data_len(),
            file_len - data_start
        )));
    }
    let infos = meta.tensors();
    let mut buf = Vec::new();
    for name in meta.offset_keys() {
        let info = infos[&name];
        let (s, e) = info.data_offsets;
        buf.clear();
        buf.resize(e - s, 0);
        f.seek(SeekFrom::Start(data_start + s as u64)).map_err(io)?;
        f.read_exact(&mut buf).map_err(io)?;
        let view = safetensors::tensor::TensorView::new(info.dtype, info.shape.clone(), &buf)
            .map_err(|e| bad(format!("tensor {name}: {e}")))?;
        let t = to_f32(&view, &name, path, dev)?;
        sink.put(name, t)?;
    }
    Ok(())
}

impl Weights {
    /// Loads `dir/model.safetensors`, or every shard named by `dir/model.safetensors.index.json`.
    pub fn load(dir: &Path, dev: &Device) -> Result<Self, ModelError> {
        Self::load_with(dir, dev, LoadOptions::default())
    }

    /// [`Weights::load`], quantizing the linear-layer weights to NF4 as they are read when
    /// `opts.nf4` is set (the same bytes as quantizing the loaded f32 weight afterwards).
    pub fn load_with(dir: &Path, dev: &Device, opts: LoadOptions) -> Result<Self, ModelError> {
        let mut tensors = HashMap::new();
        let mut nf4 = HashMap::new();
        let mut sink = Sink {
            f32: &mut tensors,
            nf4: &mut nf4,
            opts,
        };
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        if single.exists() {
            stream_file(&single, dev, &mut sink)?;
        } else if index.exists() {
            let text = String::from_utf8_lossy(&read(&index)?).into_owned();
            #[derive(serde::Deserialize)]
            struct Index {
                weight_map: std::collections::BTreeMap<String, String>,
            }
            let idx: Index = super::config::parse(&index, &text)?;
            let mut files: Vec<&String> = idx.weight_map.values().collect();
            files.sort();
            files.dedup();
            for f in files {
                if f.contains('/') || f.contains('\\') || f.starts_with('.') {
                    return Err(ModelError::Weights {
                        path: index.clone(),
                        reason: format!("shard name {f:?} is not a plain file name"),
                    });
                }
                stream_file(&dir.join(f), dev, &mut sink)?;
            }
            for name in idx.weight_map.keys() {
                if !sink.contains(name) {
                    return Err(ModelError::MissingTensor {
                        name: name.clone(),
                        dir: dir.to_path_buf(),
                    });
                }
            }
        } else {
            return Err(ModelError::MissingFile { path: single });
        }
        Ok(Weights {
            tensors,
            nf4,
            dir: dir.to_path_buf(),
        })
    }

    /// Loads one safetensors file (an adapter, a shard).
    pub fn load_file_map(path: &Path, dev: &Device) -> Result<Self, ModelError> {
        let mut tensors = HashMap::new();
        load_file(path, dev, &mut tensors)?;
        Ok(Weights {
            tensors,
            nf4: HashMap::new(),
            dir: path.to_path_buf(),
        })
    }

    /// Loads a safetensors file held in memory (`path` names it in messages).
    pub fn from_bytes(bytes: &[u8], path: &Path, dev: &Device) -> Result<Self, ModelError> {
        let mut tensors = HashMap::new();
        load_bytes(bytes, path, dev, &mut tensors)?;
        Ok(Weights {
            tensors,
            nf4: HashMap::new(),
            dir: path.to_path_buf(),
        })
    }

    pub fn from_map(tensors: HashMap<String, Tensor>, dir: &Path) -> Self {
        Weights {
            tensors,
            nf4: HashMap::new(),
            dir: dir.to_path_buf(),
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name) || self.nf4.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.tensors.keys().chain(self.nf4.keys())
    }

    /// Removes and returns the frozen weight of a linear layer: its NF4 form when it was
    /// quantized on load, f32 otherwise; the shape is checked either way.
    pub fn take_base(&mut self, name: &str, shape: &[usize]) -> Result<Base, ModelError> {
        match self.nf4.remove(name) {
            Some(q) => {
                if [q.shape.0, q.shape.1] != shape {
                    return Err(ModelError::Shape {
                        name: name.to_string(),
                        expected: shape.to_vec(),
                        got: vec![q.shape.0, q.shape.1],
                    });
                }
                Ok(Base::Nf4(q))
            }
            None => Ok(Base::F32(self.take(name, shape)?)),
        }
    }

    /// Removes and returns `name`, checking its shape.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor, ModelError> {
        let t = self
            .tensors
            .remove(name)
            .ok_or_else(|| ModelError::MissingTensor {
                name: name.to_string(),
                dir: self.dir.clone(),
            })?;
        if t.dims() != shape {
            return Err(ModelError::Shape {
                name: name.to_string(),
                expected: shape.to_vec(),
                got: t.dims().to_vec(),
            });
        }
        Ok(t)
    }

    /// A copy of `name` (for tied weights used twice), checking its shape.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor, ModelError> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| ModelError::MissingTensor {
                name: name.to_string(),
                dir: self.dir.clone(),
            })?;
        if t.dims() != shape {
            return Err(ModelError::Shape {
                name: name.to_string(),
                expected: shape.to_vec(),
                got: t.dims().to_vec(),
            });
        }
        Ok(t.clone())
    }
}
