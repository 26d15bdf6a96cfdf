//! The tensors of a Hugging Face model folder: `model.safetensors`, or the shards listed by
//! `model.safetensors.index.json`. Every tensor is converted to f32 on load (f32, f16 and bf16
//! checkpoints are accepted); a lookup checks the shape and names the tensor when it is wrong.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::ModelError;

pub struct Weights {
    tensors: HashMap<String, Tensor>,
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
        let t =
            candle_core::safetensors::Load::load(&view, dev).map_err(|e| ModelError::Weights {
                path: path.to_path_buf(),
                reason: format!("tensor {name}: {e}"),
            })?;
        let t = match t.dtype() {
            DType::F32 => t,
            DType::F16 | DType::BF16 | DType::F64 => t.to_dtype(DType::F32)?,
            other => {
                return Err(ModelError::Unsupported(format!(
                    "tensor {name} in {} has dtype {other:?} (f32, f16 or bf16 expected)",
                    path.display()
                )));
            }
        };
        out.insert(name, t);
    }
    Ok(())
}

impl Weights {
    /// Loads `dir/model.safetensors`, or every shard named by `dir/model.safetensors.index.json`.
    pub fn load(dir: &Path, dev: &Device) -> Result<Self, ModelError> {
        let mut tensors = HashMap::new();
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        if single.exists() {
            load_file(&single, dev, &mut tensors)?;
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
                load_file(&dir.join(f), dev, &mut tensors)?;
            }
            for name in idx.weight_map.keys() {
                if !tensors.contains_key(name) {
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
            dir: dir.to_path_buf(),
        })
    }

    /// Loads one safetensors file (an adapter, a shard).
    pub fn load_file_map(path: &Path, dev: &Device) -> Result<Self, ModelError> {
        let mut tensors = HashMap::new();
        load_file(path, dev, &mut tensors)?;
        Ok(Weights {
            tensors,
            dir: path.to_path_buf(),
        })
    }

    /// Loads a safetensors file held in memory (`path` names it in messages).
    pub fn from_bytes(bytes: &[u8], path: &Path, dev: &Device) -> Result<Self, ModelError> {
        let mut tensors = HashMap::new();
        load_bytes(bytes, path, dev, &mut tensors)?;
        Ok(Weights {
            tensors,
            dir: path.to_path_buf(),
        })
    }

    pub fn from_map(tensors: HashMap<String, Tensor>, dir: &Path) -> Self {
        Weights {
            tensors,
            dir: dir.to_path_buf(),
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.tensors.keys()
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
