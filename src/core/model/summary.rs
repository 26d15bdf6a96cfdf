//! What `gym model inspect` reports, computed from `config.json` alone (no weights loaded).

use serde::Serialize;

use super::{Arch, ModelConfig};

/// Parameter counts and memory estimates of a model.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub architecture: Arch,
    pub layers: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub attention_heads: usize,
    pub key_value_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub tied_embeddings: bool,
    pub rope_theta: f64,
    /// Experts per MoE layer and experts chosen per token (0 for dense models).
    pub experts: usize,
    pub experts_per_token: usize,
    pub moe_layers: usize,
    /// All parameters.
    pub parameters: u64,
    /// Parameters in the linear layers (attention and MLP/experts): what NF4 quantizes.
    pub linear_parameters: u64,
    /// Bytes of the weights stored as f32, as bf16, and with NF4 linear layers (double-quantized
    /// absmax) and everything else in bf16.
    pub bytes_f32: u64,
    pub bytes_bf16: u64,
    pub bytes_nf4: u64,
    pub lora_rank: usize,
    /// Trainable parameters of a LoRA adapter of `lora_rank` on every linear layer.
    pub lora_parameters: u64,
}

/// NF4 bytes of n weights: half a byte each, one 8-bit absmax per 64, one f32 per 256 of those.
pub fn nf4_bytes(n: u64) -> u64 {
    let blocks = n.div_ceil(64);
    n.div_ceil(2) + blocks + 4 * blocks.div_ceil(256) + 4
}

impl Summary {
    pub fn architecture_str(&self) -> &'static str {
        self.architecture.as_str()
    }

    pub fn new(cfg: &ModelConfig, rank: usize) -> Self {
        let c = &cfg.base;
        let (h, hd, nh, nkv) = (
            c.hidden_size as u64,
            c.head_dim() as u64,
            c.num_attention_heads as u64,
            c.kv_heads() as u64,
        );
        let r = rank as u64;
        let mut linear = 0u64;
        let mut lora = 0u64;
        let mut other = 0u64;
        let mut nf4 = 0u64;
        let mut moe_layers = 0;
        let add = |o: u64, i: u64, linear: &mut u64, lora: &mut u64, nf4: &mut u64| {
            *linear += o * i;
            *lora += r * (o + i);
            *nf4 += nf4_bytes(o * i);
        };
        for l in 0..c.num_hidden_layers {
            let sp = &cfg.spec;
            other += 2 * h; // two layer norms
            if let Some(n) = sp.next.as_ref().filter(|n| n.linear[l]) {
                // Qwen3-Next's gated DeltaNet: in_proj_qkvz, in_proj_ba, out_proj; conv taps,
                // dt_bias, A_log and the gated norm
                let (nk, nv) = (n.key_heads as u64, n.value_heads as u64);
                let (dk, dv) = (n.key_dim as u64, n.value_dim as u64);
                add(
                    2 * nk * dk + 2 * nv * dv,
                    h,
                    &mut linear,
                    &mut lora,
                    &mut nf4,
                );
                add(2 * nv, h, &mut linear, &mut lora, &mut nf4);
                add(h, nv * dv, &mut linear, &mut lora, &mut nf4);
                other += n.conv_dim() as u64 * n.conv_kernel as u64 + 2 * nv + dv;
            } else {
                // gated attention (Qwen3-Next) doubles q_proj
                let q = if sp.next.is_some() {
                    2 * nh * hd
                } else {
                    nh * hd
                };
                add(q, h, &mut linear, &mut lora, &mut nf4);
                add(nkv * hd, h, &mut linear, &mut lora, &mut nf4);
                add(nkv * hd, h, &mut linear, &mut lora, &mut nf4);
                add(h, nh * hd, &mut linear, &mut lora, &mut nf4);
                other += Self::attention_extras(sp, h, hd, nh, nkv);
            }
            match &cfg.moe {
                Some(m) if m.is_sparse_layer(l) => {
                    moe_layers += 1;
                    let (e, i) = (m.num_experts as u64, m.moe_intermediate_size as u64);
                    other += e * h; // router
                    for _ in 0..e {
                        add(i, h, &mut linear, &mut lora, &mut nf4);
                        add(i, h, &mut linear, &mut lora, &mut nf4);
                        add(h, i, &mut linear, &mut lora, &mut nf4);
                    }
                    if let Some(s) = m.shared_expert_intermediate_size {
                        let s = s as u64;
                        other += h; // shared_expert_gate
                        add(s, h, &mut linear, &mut lora, &mut nf4);
                        add(s, h, &mut linear, &mut lora, &mut nf4);
                        add(h, s, &mut linear, &mut lora, &mut nf4);
                    }
                }
                _ => {
                    let i = c.intermediate_size as u64;
                    if sp.mlp_bias {
                        other += 2 * i + h;
                    }
                    add(i, h, &mut linear, &mut lora, &mut nf4);
                    add(i, h, &mut linear, &mut lora, &mut nf4);
                    add(h, i, &mut linear, &mut lora, &mut nf4);
                }
            }
        }
        Self::finish(cfg, rank, linear, lora, other, nf4, moe_layers)
    }

    /// Norm and bias parameters of an attention block.
    fn attention_extras(sp: &super::decoder::Spec, h: u64, hd: u64, nh: u64, nkv: u64) -> u64 {
        let mut other = 0;
        if sp.qk_norm {
            other += 2 * hd;
        }
        if sp.qkv_bias {
            other += (nh + 2 * nkv) * hd;
        }
        if sp.o_bias {
            other += h;
        }
        other
    }

    fn finish(
        cfg: &ModelConfig,
        rank: usize,
        linear: u64,
        lora: u64,
        mut other: u64,
        nf4: u64,
        moe_layers: usize,
    ) -> Self {
        let c = &cfg.base;
        let h = c.hidden_size as u64;
        let v = c.vocab_size as u64;
        other += v * h + h; // embedding, final norm
        if !c.tie_word_embeddings {
            other += v * h;
        }
        let total = linear + other;
        Summary {
            architecture: cfg.arch,
            layers: c.num_hidden_layers,
            hidden_size: c.hidden_size,
            intermediate_size: c.intermediate_size,
            attention_heads: c.num_attention_heads,
            key_value_heads: c.kv_heads(),
            head_dim: c.head_dim(),
            vocab_size: c.vocab_size,
            tied_embeddings: c.tie_word_embeddings,
            rope_theta: c.rope_theta().unwrap_or(f64::NAN),
            experts: cfg.moe.as_ref().map_or(0, |m| m.num_experts),
            experts_per_token: cfg.moe.as_ref().map_or(0, |m| m.num_experts_per_tok),
            moe_layers,
            parameters: total,
            linear_parameters: linear,
            bytes_f32: 4 * total,
            bytes_bf16: 2 * total,
            bytes_nf4: nf4 + 2 * other,
            lora_rank: rank,
            lora_parameters: lora,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_the_tiny_models_weights() {
        for name in [
            "tiny-qwen3",
            "tiny-qwen3-moe",
            "tiny-qwen2",
            "tiny-llama",
            "tiny-mistral",
            "tiny-mixtral",
            "tiny-qwen3-next",
        ] {
            let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("testdata")
                .join(name);
            let cfg = ModelConfig::load(&dir).unwrap();
            let s = Summary::new(&cfg, 4);
            let w = candle_core::safetensors::load(
                dir.join("model.safetensors"),
                &candle_core::Device::Cpu,
            )
            .unwrap();
            let n: usize = w.values().map(|t| t.elem_count()).sum();
            assert_eq!(s.parameters, n as u64, "{name}");
        }
    }
}
