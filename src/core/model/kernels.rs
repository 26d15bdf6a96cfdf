//! gym's own CUDA kernels: the sources are kernels/*.cu, compiled to PTX by build.rs when the
//! `cuda` feature is on and embedded here; the launches below are the `cuda_fwd` of the custom
//! ops in ops.rs and the device dequantization of nf4_resident.rs.
//!
//! Every kernel mirrors one CPU function (named in its doc comment in the .cu file) and works on
//! contiguous f32 (the NF4 kernels also write bf16). The entry points are listed in [`ALL`], which
//! a test of the default build checks against the .cu files, so a renamed kernel fails CI even
//! where nothing is compiled for a GPU.

/// A kernel entry point: the .cu file defining it and its `extern "C"` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernel {
    pub file: &'static str,
    pub name: &'static str,
}

const fn k(file: &'static str, name: &'static str) -> Kernel {
    Kernel { file, name }
}

pub const NF4_PLAIN_F32: Kernel = k("nf4.cu", "gym_nf4_dequant_plain_f32");
pub const NF4_PLAIN_BF16: Kernel = k("nf4.cu", "gym_nf4_dequant_plain_bf16");
pub const NF4_DOUBLE_F32: Kernel = k("nf4.cu", "gym_nf4_dequant_double_f32");
pub const NF4_DOUBLE_BF16: Kernel = k("nf4.cu", "gym_nf4_dequant_double_bf16");
pub const RMS_NORM: Kernel = k("ops.cu", "gym_rms_norm_f32");
pub const RMS_NORM_BWD: Kernel = k("ops.cu", "gym_rms_norm_bwd_f32");
pub const ROPE: Kernel = k("ops.cu", "gym_rope_f32");
pub const NORM_ROPE: Kernel = k("ops.cu", "gym_norm_rope_f32");
pub const SWIGLU: Kernel = k("ops.cu", "gym_swiglu_f32");
pub const SWIGLU_BWD: Kernel = k("ops.cu", "gym_swiglu_bwd_f32");
pub const SOFTMAX: Kernel = k("ops.cu", "gym_softmax_f32");
pub const SOFTMAX_BWD: Kernel = k("ops.cu", "gym_softmax_bwd_f32");

/// Every entry point the Rust side launches.
pub const ALL: &[Kernel] = &[
    NF4_PLAIN_F32,
    NF4_PLAIN_BF16,
    NF4_DOUBLE_F32,
    NF4_DOUBLE_BF16,
    RMS_NORM,
    RMS_NORM_BWD,
    ROPE,
    NORM_ROPE,
    SWIGLU,
    SWIGLU_BWD,
    SOFTMAX,
    SOFTMAX_BWD,
];

/// Threads per block of the row kernels; `GYM_ROW_THREADS` in kernels/common.cuh.
pub const ROW_THREADS: u32 = 256;

#[cfg(feature = "cuda")]
pub use launch::*;

// Kernel launches and the kernels' argument struct are `unsafe` FFI (cudarc), each under a
// `// SAFETY:` comment; nothing else in this module is.
#[cfg(feature = "cuda")]
#[allow(unsafe_code)]
mod launch {
    use candle_core::cuda_backend::WrapErr;
    use candle_core::cuda_backend::cudarc::driver::{
        CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg,
    };
    use candle_core::{CudaDevice, CudaStorage, DType, Layout, Result, Storage, Tensor, bail};

    use super::{Kernel, ROW_THREADS};
    use crate::core::model::nf4::{NF4, code8};

    const NF4_PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/nf4.ptx"));
    const OPS_PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/ops.ptx"));

    /// The PTX of a kernel's file, as embedded.
    pub fn ptx(file: &str) -> Option<&'static str> {
        match file {
            "nf4.cu" => Some(NF4_PTX),
            "ops.cu" => Some(OPS_PTX),
            _ => None,
        }
    }

    /// Threads per block of the element-wise kernels (grid-stride loops).
    const THREADS: u32 = 256;

    /// `n` as the kernels' u32 count.
    fn count(n: usize, what: &str) -> Result<u32> {
        match u32::try_from(n) {
            Ok(n) => Ok(n),
            Err(_) => bail!("{what}: {n} elements exceed the kernel's u32 count"),
        }
    }

    fn elementwise(n: u32) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (n.div_ceil(THREADS).clamp(1, 65535), 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    fn per_row(rows: u32) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (rows.max(1), 1, 1),
            block_dim: (ROW_THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// The contiguous part of a storage that a layout addresses, as a typed view.
    fn view<'a, T: candle_core::cuda_backend::CudaDType>(
        s: &'a CudaStorage,
        l: &Layout,
        what: &str,
    ) -> Result<CudaView<'a, T>> {
        let slice: &CudaSlice<T> = s.as_cuda_slice::<T>()?;
        match l.contiguous_offsets() {
            Some((a, b)) => Ok(slice.slice(a..b)),
            None => bail!("{what}: expected a contiguous input"),
        }
    }

    /// The f32 view of a constant input held as a tensor (a weight, rotation angles); `s`
    /// is its storage, read-locked by the caller for as long as the view lives.
    fn param<'a>(s: &'a Storage, l: &Layout, what: &str) -> Result<CudaView<'a, f32>> {
        match s {
            Storage::Cuda(c) => view::<f32>(c, l, what),
            _ => bail!("{what}: expected a tensor on the GPU"),
        }
    }

    /// An uninitialised output of `n` elements; every kernel writes all of its output.
    /// (One element when `n` is 0: the driver refuses empty allocations; nothing is launched
    /// then and the tensor's shape says 0.)
    fn output<T: DeviceRepr>(dev: &CudaDevice, n: usize) -> Result<CudaSlice<T>> {
        // SAFETY: the kernel launched next writes every element.
        unsafe { dev.alloc::<T>(n.max(1)) }
    }

    /// The embedded PTX of a kernel's file.
    fn ptx_of(k: Kernel) -> Result<&'static str> {
        match ptx(k.file) {
            Some(p) => Ok(p),
            None => bail!("no PTX embedded for {}", k.file),
        }
    }

    /// Launches kernel `$k` on `$dev` with `$cfg` and the arguments (references) that follow,
    /// unless `$empty` (nothing to compute).
    macro_rules! launch {
        ($dev:expr, $k:expr, $cfg:expr, $empty:expr; $($arg:expr),* $(,)?) => {{
            if !$empty {
                let k: Kernel = $k;
                let func = $dev.get_or_load_custom_func(k.name, &format!("gym-{}", k.file), ptx_of(k)?)?;
                let mut b = func.builder();
                $( b.arg($arg); )*
                // SAFETY: the arguments match the kernel's parameter list in kernels/*.cu, and
                // every pointer covers the element counts passed with it.
                unsafe { b.launch($cfg) }.w()?;
            }
        }};
    }

    fn rows_of(l: &Layout, d: usize, what: &str) -> Result<(u32, u32)> {
        let n = l.shape().elem_count();
        if d == 0 || l.dims().last() != Some(&d) {
            bail!("{what}: input {:?} does not end in {d}", l.dims())
        }
        Ok((count(n / d, what)?, count(d, what)?))
    }

    /// `RmsNorm::cpu_fwd` on the GPU (kernels/ops.cu `gym_rms_norm_f32`).
    pub fn rms_norm(x: &CudaStorage, xl: &Layout, w: &Tensor, eps: f32) -> Result<CudaStorage> {
        let dev = &x.device;
        let (rows, d) = rows_of(xl, w.elem_count(), "rms_norm")?;
        let xv = view::<f32>(x, xl, "rms_norm x")?;
        let (ws, wl) = w.storage_and_layout();
        let wv = param(&ws, wl, "rms_norm w")?;
        let out = output::<f32>(dev, xl.shape().elem_count())?;
        launch!(dev, super::RMS_NORM, per_row(rows), rows == 0; &xv, &wv, &out, &rows, &d, &eps);
        Ok(CudaStorage::wrap_cuda_slice(out, dev.clone()))
    }

    /// `RmsNormBwd::cpu_fwd` on the GPU (`gym_rms_norm_bwd_f32`).
    pub fn rms_norm_bwd(
        x: &CudaStorage,
        xl: &Layout,
        g: &CudaStorage,
        gl: &Layout,
        w: &Tensor,
        eps: f32,
    ) -> Result<CudaStorage> {
        let dev = &x.device;
        let (rows, d) = rows_of(xl, w.elem_count(), "rms_norm bwd")?;
        if xl.shape() != gl.shape() {
            bail!("rms_norm bwd: shapes {:?} and {:?}", xl.dims(), gl.dims())
        }
        let (xv, gv) = (view::<f32>(x, xl, "x")?, view::<f32>(g, gl, "g")?);
        let (ws, wl) = w.storage_and_layout();
        let wv = param(&ws, wl, "rms_norm w")?;
        let out = output::<f32>(dev, xl.shape().elem_count())?;
        launch!(dev, super::RMS_NORM_BWD, per_row(rows), rows == 0; &xv, &gv, &wv, &out, &rows, &d, &eps);
        Ok(CudaStorage::wrap_cuda_slice(out, dev.clone()))
    }

    /// (b, h, t, d) as the kernels' u32s.
    fn dims4(dims: (usize, usize, usize, usize), what: &str) -> Result<[u32; 4]> {
        let (b, h, t, d) = dims;
        Ok([
            count(b, what)?,
            count(h, what)?,
            count(t, what)?,
            count(d, what)?,
        ])
    }

    /// `Rope::apply` on the GPU (`gym_rope_f32`): x (b, h, t, d), cos/sin (b, t, d/2); `sign`
    /// −1 for the backward.
    pub fn rope(
        x: &CudaStorage,
        xl: &Layout,
        cos: &Tensor,
        sin: &Tensor,
        dims: (usize, usize, usize, usize),
        sign: f32,
    ) -> Result<CudaStorage> {
        let dev = &x.device;
        let [b, h, t, d] = dims4(dims, "rope")?;
        let n = xl.shape().elem_count();
        if xl.dims() != [dims.0, dims.1, dims.2, dims.3] || d % 2 != 0 {
            bail!(
                "rope: input {:?}, expected {dims:?} with an even d",
                xl.dims()
            )
        }
        let xv = view::<f32>(x, xl, "rope x")?;
        let (cs, cl) = cos.storage_and_layout();
        let (ss, sl) = sin.storage_and_layout();
        let (cv, sv) = (param(&cs, cl, "rope cos")?, param(&ss, sl, "rope sin")?);
        let out = output::<f32>(dev, n)?;
        let pairs = count(n / 2, "rope")?;
        launch!(dev, super::ROPE, elementwise(pairs), pairs == 0; &xv, &cv, &sv, &out, &b, &h, &t, &d, &sign);
        Ok(CudaStorage::wrap_cuda_slice(out, dev.clone()))
    }

    /// `NormRope::cpu_fwd` on the GPU (`gym_norm_rope_f32`): x (b, t, h, d) in, (b, h, t, d) out;
    /// the rotation as in [`rope`].
    pub fn norm_rope(
        x: &CudaStorage,
        xl: &Layout,
        (w, eps): (&Tensor, f32),
        (cos, sin, sign): (&Tensor, &Tensor, f32),
        dims: (usize, usize, usize, usize),
    ) -> Result<CudaStorage> {
        let dev = &x.device;
        let [b, h, t, d] = dims4(dims, "norm-rope")?;
        if xl.dims() != [dims.0, dims.2, dims.1, dims.3] || d % 2 != 0 || w.elem_count() != dims.3 {
            bail!(
                "norm-rope: input {:?}, expected (b, t, h, d) of {dims:?}",
                xl.dims()
            )
        }
        let xv = view::<f32>(x, xl, "norm-rope x")?;
        let (ws, wl) = w.storage_and_layout();
        let (cs, cl) = cos.storage_and_layout();
        let (ss, sl) = sin.storage_and_layout();
        let wv = param(&ws, wl, "norm-rope w")?;
        let (cv, sv) = (param(&cs, cl, "rope cos")?, param(&ss, sl, "rope sin")?);
        let out = output::<f32>(dev, xl.shape().elem_count())?;
        let rows = count(dims.0 * dims.1 * dims.2, "norm-rope")?;
        launch!(dev, super::NORM_ROPE, per_row(rows), rows == 0; &xv, &wv, &cv, &sv, &out, &b, &t, &h, &d, &eps, &sign);
        Ok(CudaStorage::wrap_cuda_slice(out, dev.clone()))
    }

    /// `SwiGlu::cpu_fwd` on the GPU (`gym_swiglu_f32`).
    pub fn swiglu(
        g: &CudaStorage,
        gl: &Layout,
        u: &CudaStorage,
        ul: &Layout,
    ) -> Result<CudaStorage> {
        let dev = &g.device;
        if gl.shape() != ul.shape() {
            bail!("swiglu: shapes {:?} and {:?}", gl.dims(), ul.dims())
        }
        let (gv, uv) = (view::<f32>(g, gl, "gate")?, view::<f32>(u, ul, "up")?);
        let n = count(gl.shape().elem_count(), "swiglu")?;
        let out = output::<f32>(dev, n as usize)?;
        launch!(dev, super::SWIGLU, elementwise(n), n == 0; &gv, &uv, &out, &n);
        Ok(CudaStorage::wrap_cuda_slice(out, dev.clone()))
    }

    /// `SwiGluBwd::cpu_fwd` on the GPU (`gym_swiglu_bwd_f32`): stack(gate, up) and dy in,
    /// stack(d gate, d up) out.
    pub fn swiglu_bwd(
        gu: &CudaStorage,
        gul: &Layout,
        dy: &CudaStorage,
        dyl: &Layout,
    ) -> Result<CudaStorage> {
        let dev = &gu.device;
        let n = dyl.shape().elem_count();
        if gul.shape().elem_count() != 2 * n {
            bail!(
                "swiglu bwd: {:?} is not two of {:?}",
                gul.dims(),
                dyl.dims()
            )
        }
        let (guv, dyv) = (
            view::<f32>(gu, gul, "gate/up")?,
            view::<f32>(dy, dyl, "dy")?,
        );
        let out = output::<f32>(dev, 2 * n)?;
        let n = count(n, "swiglu bwd")?;
        launch!(dev, super::SWIGLU_BWD, elementwise(n), n == 0; &guv, &dyv, &out, &n);
        Ok(CudaStorage::wrap_cuda_slice(out, dev.clone()))
    }

    /// `Softmax::cpu_fwd` on the GPU (`gym_softmax_f32`), over the last dimension.
    pub fn softmax(x: &CudaStorage, xl: &Layout) -> Result<CudaStorage> {
        let dev = &x.device;
        let d = xl.dims().last().copied().unwrap_or(1);
        let (rows, d) = rows_of(xl, d, "softmax")?;
        let xv = view::<f32>(x, xl, "softmax x")?;
        let out = output::<f32>(dev, xl.shape().elem_count())?;
        launch!(dev, super::SOFTMAX, per_row(rows), rows == 0; &xv, &out, &rows, &d);
        Ok(CudaStorage::wrap_cuda_slice(out, dev.clone()))
    }

    /// `SoftmaxBwd::cpu_fwd` on the GPU (`gym_softmax_bwd_f32`).
    pub fn softmax_bwd(
        y: &CudaStorage,
        yl: &Layout,
        g: &CudaStorage,
        gl: &Layout,
    ) -> Result<CudaStorage> {
        let dev = &y.device;
        if yl.shape() != gl.shape() {
            bail!("softmax bwd: shapes {:?} and {:?}", yl.dims(), gl.dims())
        }
        let d = yl.dims().last().copied().unwrap_or(1);
        let (rows, d) = rows_of(yl, d, "softmax bwd")?;
        let (yv, gv) = (view::<f32>(y, yl, "y")?, view::<f32>(g, gl, "g")?);
        let out = output::<f32>(dev, yl.shape().elem_count())?;
        launch!(dev, super::SOFTMAX_BWD, per_row(rows), rows == 0; &yv, &gv, &out, &rows, &d);
        Ok(CudaStorage::wrap_cuda_slice(out, dev.clone()))
    }

    /// The NF4 and 8-bit code tables, passed to the kernels by value (`GymNf4Tables` in
    /// kernels/nf4.cu).
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Nf4Tables {
        nf4: [f32; 16],
        code8: [f32; 256],
    }

    // SAFETY: plain f32 arrays, laid out as the C struct it is passed as.
    unsafe impl DeviceRepr for Nf4Tables {}

    fn tables() -> Nf4Tables {
        Nf4Tables {
            nf4: NF4,
            code8: code8(),
        }
    }

    /// The per-block scales of a resident NF4 weight, as the dequantization kernels take them.
    pub enum Scales<'a> {
        /// One f32 per block (its storage and layout).
        Plain(&'a CudaStorage, &'a Layout),
        /// 8-bit codes, one f32 per 256 codes, the offset.
        Double {
            q: (&'a CudaStorage, &'a Layout),
            absmax2: (&'a CudaStorage, &'a Layout),
            offset: f32,
        },
    }

    /// `Nf4Tensor::dequantize_vec` on the GPU (kernels/nf4.cu): `n` weights from the packed
    /// codes, as f32 or bf16 (`dtype`).
    pub fn nf4_dequantize(
        packed: &CudaStorage,
        pl: &Layout,
        scales: Scales<'_>,
        n: usize,
        dtype: DType,
    ) -> Result<CudaStorage> {
        let dev = &packed.device;
        let pv = view::<u8>(packed, pl, "nf4 codes")?;
        if pv.len() < n.div_ceil(2) {
            bail!("nf4: {} bytes of codes for {n} weights", pv.len())
        }
        let n32 = count(n, "nf4 dequantize")?;
        let t = tables();
        macro_rules! run {
            ($ty:ty, $plain:expr, $double:expr) => {{
                let out = output::<$ty>(dev, n)?;
                match &scales {
                    Scales::Plain(a, al) => {
                        let av = view::<f32>(a, al, "nf4 absmax")?;
                        launch!(dev, $plain, elementwise(n32), n == 0; &pv, &av, &n32, &t, &out);
                    }
                    Scales::Double { q, absmax2, offset } => {
                        let qv = view::<u8>(q.0, q.1, "nf4 absmax codes")?;
                        let a2 = view::<f32>(absmax2.0, absmax2.1, "nf4 absmax2")?;
                        launch!(dev, $double, elementwise(n32), n == 0; &pv, &qv, &a2, offset, &n32, &t, &out);
                    }
                }
                CudaStorage::wrap_cuda_slice(out, dev.clone())
            }};
        }
        Ok(match dtype {
            DType::F32 => run!(f32, super::NF4_PLAIN_F32, super::NF4_DOUBLE_F32),
            DType::BF16 => run!(half::bf16, super::NF4_PLAIN_BF16, super::NF4_DOUBLE_BF16),
            other => bail!("nf4 dequantize: no kernel for {other:?}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `extern "C" __global__` entry points defined in a .cu source, with their number of
    /// parameters.
    fn entry_points(src: &str) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        let mut rest = src;
        while let Some(i) = rest.find("extern \"C\" __global__ void ") {
            rest = &rest[i + "extern \"C\" __global__ void ".len()..];
            let open = rest.find('(').expect("a parameter list");
            let close = rest.find(')').expect("a parameter list");
            let params = rest[open + 1..close].split(',').count();
            out.push((rest[..open].trim().to_string(), params));
        }
        out
    }

    /// The text of a macro invocation starting at `from`, after `at`, up to `end`.
    fn invocation<'a>(src: &'a str, at: &str, from: usize, end: &str) -> &'a str {
        let rest = &src[from + at.len()..];
        &rest[..rest.find(end).expect("a closed invocation")]
    }

    /// (kernel name, number of arguments) of every `launch!` in `src` (this file); a launch
    /// through the NF4 macro's `$plain`/`$double` counts for each kernel that `run!` passes.
    fn launches(src: &str) -> Vec<(String, usize)> {
        let ident_of = |k: &Kernel| -> Option<String> {
            let decl = format!("k(\"{}\", \"{}\")", k.file, k.name);
            let line = src.lines().find(|l| l.contains(&decl))?;
            let ident = line.trim().strip_prefix("pub const ")?.split(':').next()?;
            Some(ident.to_string())
        };
        let name_of = |ident: &str| -> String {
            let k = ALL.iter().find(|k| ident_of(k).as_deref() == Some(ident));
            k.unwrap_or_else(|| panic!("no kernel constant {ident}"))
                .name
                .to_string()
        };
        let strip = |s: &str| s.trim().trim_start_matches("super::").to_string();
        let runs: Vec<Vec<String>> = src
            .match_indices("=> run!(")
            .map(|(i, at)| invocation(src, at, i, ")").split(',').map(strip).collect())
            .collect();
        let mut out = Vec::new();
        for (i, at) in src.match_indices("launch!(dev, ") {
            let (head, args) = invocation(src, at, i, ");")
                .split_once(';')
                .expect("launch!(…; args)");
            let n = args.split(',').filter(|a| !a.trim().is_empty()).count();
            let ident = strip(head.split(',').next().unwrap());
            let idents: Vec<String> = match ident.as_str() {
                "$plain" => runs.iter().map(|r| r[1].clone()).collect(),
                "$double" => runs.iter().map(|r| r[2].clone()).collect(),
                _ => vec![ident],
            };
            out.extend(idents.iter().map(|id| (name_of(id), n)));
        }
        out
    }

    /// Every kernel the Rust side launches is defined, under its name, in the file it is looked
    /// up in, every entry point of kernels/ is launched, and each launch passes as many arguments
    /// as its kernel takes: a renamed, dropped or re-parametrised kernel fails here, in the
    /// default build, before any GPU sees it.
    #[test]
    fn launched_kernels_match_the_cuda_sources() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = root.join("kernels");
        let mut defined = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "cu") {
                let file = p.file_name().unwrap().to_string_lossy().to_string();
                let src = std::fs::read_to_string(&p).unwrap();
                defined.extend(entry_points(&src).into_iter().map(|e| (file.clone(), e)));
            }
        }
        let mut names: Vec<(String, String)> = defined
            .iter()
            .map(|(f, (n, _))| (f.clone(), n.clone()))
            .collect();
        let mut listed: Vec<(String, String)> = ALL
            .iter()
            .map(|k| (k.file.to_string(), k.name.to_string()))
            .collect();
        names.sort();
        listed.sort();
        assert_eq!(names, listed, "kernels/*.cu entry points vs kernels::ALL");
        let src = std::fs::read_to_string(root.join("src/core/model/kernels.rs")).unwrap();
        let code = &src[..src.find("#[cfg(test)]\nmod tests").unwrap()]; // not these tests
        let launched = launches(code);
        assert!(launched.len() >= ALL.len(), "{launched:?}");
        for (_, (name, params)) in &defined {
            let counts: Vec<usize> = launched
                .iter()
                .filter(|(n, _)| n == name)
                .map(|l| l.1)
                .collect();
            assert!(!counts.is_empty(), "{name} is never launched");
            assert!(
                counts.iter().all(|c| c == params),
                "{name} takes {params} parameters, launched with {counts:?}"
            );
        }
        let common = std::fs::read_to_string(dir.join("common.cuh")).unwrap();
        assert!(
            common.contains(&format!("#define GYM_ROW_THREADS {ROW_THREADS}\n")),
            "GYM_ROW_THREADS differs from ROW_THREADS"
        );
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn the_ptx_is_embedded_with_every_entry_point() {
        for k in ALL {
            let ptx = ptx(k.file).unwrap();
            assert!(
                ptx.contains(&format!(".entry {}(", k.name)),
                "{} not in {}",
                k.name,
                k.file
            );
        }
    }
}
