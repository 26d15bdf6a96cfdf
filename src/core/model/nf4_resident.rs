//! An NF4 weight kept on a GPU in its packed form (4-bit codes, and the double-quantized
//! absmax: 8-bit codes, one f32 per 256 blocks, the offset), dequantized there at each use: no
//! f32 copy of the weight lives between uses and nothing crosses from the host. On a CUDA GPU
//! one kernel (kernels/nf4.cu) writes the weight in one pass; elsewhere candle's own device ops
//! do it in a dozen. The arithmetic is the CPU path's (`Nf4Tensor::dequantize_vec`): a table
//! look-up, one f32 product per weight and, for double quantization, one product and one sum
//! per block, each rounded once, so all give the same bits.

use candle_core::{D, DType, Device, Result, Tensor};

use super::nf4::{Absmax, BLOCK, BLOCK2, NF4, Nf4Tensor, code8};

/// The device copy of an [`Nf4Tensor`]'s storage.
#[derive(Debug, Clone)]
pub struct Resident {
    /// ceil(n/2) bytes, two codes each (high nibble first).
    packed: Tensor,
    scales: Scales,
    table: Tensor,
}

#[derive(Debug, Clone)]
enum Scales {
    Plain(Tensor),
    Double {
        q: Tensor,
        absmax2: Tensor,
        offset: f64,
        code8: Tensor,
    },
}

impl Resident {
    /// Copies the packed codes and scales of `w` to `dev`.
    pub fn new(w: &Nf4Tensor, dev: &Device) -> Result<Self> {
        let scales = match &w.absmax {
            Absmax::Plain(v) => Scales::Plain(Tensor::from_slice(v, v.len(), dev)?),
            Absmax::Double { q, absmax2, offset } => Scales::Double {
                q: Tensor::from_slice(q, q.len(), dev)?,
                absmax2: Tensor::from_slice(absmax2, absmax2.len(), dev)?,
                offset: f64::from(*offset),
                code8: Tensor::from_slice(&code8(), 256, dev)?,
            },
        };
        Ok(Resident {
            packed: Tensor::from_slice(&w.packed, w.packed.len(), dev)?,
            scales,
            table: Tensor::from_slice(&NF4, 16, dev)?,
        })
    }

    /// Bytes held on the device.
    pub fn bytes(&self) -> usize {
        let n = |t: &Tensor| t.elem_count() * t.dtype().size_in_bytes();
        n(&self.packed)
            + match &self.scales {
                Scales::Plain(a) => n(a),
                Scales::Double { q, absmax2, .. } => n(q) + n(absmax2),
            }
    }

    /// The absmax of every block, as f32: code8[q] · absmax2[i / 256] + offset.
    fn absmax(&self) -> Result<Tensor> {
        match &self.scales {
            Scales::Plain(a) => Ok(a.clone()),
            Scales::Double {
                q,
                absmax2,
                offset,
                code8,
            } => {
                let nb = q.elem_count();
                let c = code8.index_select(&q.to_dtype(DType::U32)?, 0)?;
                let groups = nb.div_ceil(BLOCK2);
                let a2 = absmax2
                    .reshape((groups, 1))?
                    .broadcast_as((groups, BLOCK2))?
                    .flatten_all()?
                    .narrow(0, 0, nb)?;
                // the product and the sum are separate ops, each rounded (no fused multiply-add)
                (c * a2)? + *offset
            }
        }
    }

    /// The f32 weight of `shape` (rows, cols).
    pub fn dequantize(&self, shape: (usize, usize)) -> Result<Tensor> {
        self.dequantize_as(shape, DType::F32)
    }

    /// The weight of `shape` as `dtype` (the f32 values, rounded once for bf16/f16): on a CUDA
    /// GPU by gym's kernel (f32 and bf16 written directly), elsewhere by the composed ops.
    pub fn dequantize_as(&self, shape: (usize, usize), dtype: DType) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if self.packed.device().is_cuda() && matches!(dtype, DType::F32 | DType::BF16) {
            return self.dequantize_kernel(shape, dtype);
        }
        self.dequantize_composed(shape)?.to_dtype(dtype)
    }

    /// The kernel path: one graph-free op over the packed codes and the scales.
    #[cfg(feature = "cuda")]
    fn dequantize_kernel(&self, shape: (usize, usize), dtype: DType) -> Result<Tensor> {
        let n = shape.0 * shape.1;
        let flat = match &self.scales {
            Scales::Plain(a) => self.packed.apply_op2_no_bwd(
                a,
                &cuda::Dequantize {
                    n,
                    dtype,
                    offset: None,
                },
            )?,
            Scales::Double {
                q, absmax2, offset, ..
            } => {
                let op = cuda::Dequantize {
                    n,
                    dtype,
                    offset: Some(*offset as f32),
                };
                self.packed.apply_op3_no_bwd(q, absmax2, &op)?
            }
        };
        flat.reshape(shape)
    }

    /// The composed path (candle's tensor ops, any device).
    fn dequantize_composed(&self, shape: (usize, usize)) -> Result<Tensor> {
        let n = shape.0 * shape.1;
        let p = self.packed.to_dtype(DType::F32)?;
        let hi = (&p / 16.0)?.floor()?;
        let lo = (&p - (&hi * 16.0)?)?;
        let codes = Tensor::stack(&[hi, lo], D::Minus1)?
            .flatten_all()?
            .to_dtype(DType::U32)?;
        let vals = self.table.index_select(&codes, 0)?;
        let nb = n.div_ceil(BLOCK);
        let vals = vals.pad_with_zeros(0, 0, nb * BLOCK - vals.elem_count())?;
        let am = self.absmax()?.reshape((nb, 1))?;
        vals.reshape((nb, BLOCK))?
            .broadcast_mul(&am)?
            .flatten_all()?
            .narrow(0, 0, n)?
            .reshape(shape)
    }
}

/// The dequantization kernels as candle ops (GPU only: the CPU has `dequantize_vec`).
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::{
        CpuStorage, CudaStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, bail,
    };

    use crate::core::model::kernels::{self, Scales};

    /// `n` weights from (packed, absmax) or, with an offset, (packed, q, absmax2).
    pub(super) struct Dequantize {
        pub n: usize,
        pub dtype: DType,
        pub offset: Option<f32>,
    }

    fn cpu_refused() -> Result<(CpuStorage, Shape)> {
        bail!("nf4 dequantize kernel: the CPU dequantizes with Nf4Tensor::dequantize_vec")
    }

    impl CustomOp2 for Dequantize {
        fn name(&self) -> &'static str {
            "gym-nf4-dequantize"
        }

        fn cpu_fwd(
            &self,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            cpu_refused()
        }

        fn cuda_fwd(
            &self,
            p: &CudaStorage,
            pl: &Layout,
            a: &CudaStorage,
            al: &Layout,
        ) -> Result<(CudaStorage, Shape)> {
            let out = kernels::nf4_dequantize(p, pl, Scales::Plain(a, al), self.n, self.dtype)?;
            Ok((out, Shape::from(self.n)))
        }
    }

    impl CustomOp3 for Dequantize {
        fn name(&self) -> &'static str {
            "gym-nf4-dequantize-double"
        }

        fn cpu_fwd(
            &self,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            cpu_refused()
        }

        fn cuda_fwd(
            &self,
            p: &CudaStorage,
            pl: &Layout,
            q: &CudaStorage,
            ql: &Layout,
            a2: &CudaStorage,
            a2l: &Layout,
        ) -> Result<(CudaStorage, Shape)> {
            let Some(offset) = self.offset else {
                bail!("nf4 dequantize: double quantization needs the offset")
            };
            let scales = Scales::Double {
                q: (q, ql),
                absmax2: (a2, a2l),
                offset,
            };
            let out = kernels::nf4_dequantize(p, pl, scales, self.n, self.dtype)?;
            Ok((out, Shape::from(self.n)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The device path, run on the CPU, gives the CPU path's bits: plain and double quant,
    /// sizes with a partial last block and an odd count.
    #[test]
    fn dequantizes_to_the_bits_of_the_cpu_path() {
        for (shape, double) in [
            ((16, 64), false),
            ((16, 64), true),
            ((37, 29), true),
            ((3, 5), false),
            ((300, 64), true),
        ] {
            let v = super::super::nf4::lcg_matrix(shape.0, shape.1, 7);
            let w = Nf4Tensor::quantize_slice(&v, shape, double, &Device::Cpu);
            let r = Resident::new(&w, &Device::Cpu).unwrap();
            let got: Vec<f32> = r
                .dequantize(shape)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let want = w.dequantize_vec();
            assert_eq!(got.len(), want.len());
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "{shape:?} double={double} at {i}");
            }
            assert!(r.bytes() <= w.bytes() + 4, "{} > {}", r.bytes(), w.bytes());
        }
    }

    /// On the test device (`GYM_TEST_DEVICE`; on a GPU this is gym's kernel, kernels/nf4.cu)
    /// the resident weight dequantizes to the CPU path's bits, as f32 and as bf16 (the f32
    /// values rounded once, as candle's cast rounds them): plain and double quant, more than
    /// 256 blocks, a partial last block, an odd count.
    #[test]
    fn dequantizes_on_the_test_device_to_the_bits_of_the_cpu_path() {
        let dev = crate::core::device::test_device();
        for (shape, double) in [
            ((37, 29), true),
            ((300, 64), true),
            ((3, 5), false),
            ((64, 130), false),
        ] {
            let v = super::super::nf4::lcg_matrix(shape.0, shape.1, 11);
            let w = Nf4Tensor::quantize_slice(&v, shape, double, &Device::Cpu);
            let r = Resident::new(&w, &dev).unwrap();
            let want = w.dequantize_vec();
            let got = r.dequantize(shape).unwrap();
            assert_eq!(got.dims(), [shape.0, shape.1]);
            assert!(got.device().same_device(&dev));
            let got: Vec<f32> = got
                .to_device(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{shape:?} double={double} f32");
            let n = want.len();
            let want16: Vec<half::bf16> = Tensor::from_vec(want, n, &Device::Cpu)
                .unwrap()
                .to_dtype(DType::BF16)
                .unwrap()
                .to_vec1()
                .unwrap();
            let got16: Vec<half::bf16> = r
                .dequantize_as(shape, DType::BF16)
                .unwrap()
                .to_device(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(got16, want16, "{shape:?} double={double} bf16");
        }
    }
}
