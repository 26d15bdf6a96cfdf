//! The CPU's large f32 matrix products (the frozen base's products, forward and backward, and
//! the LM head's): candle's `gemm` crate ("builtin"), or a system CBLAS library loaded at run
//! time, oneMKL or else OpenBLAS by default where one is installed (`--blas`, `GYM_BLAS`;
//! docs/benchmarks.md has the figures: on this project's AVX-512 machines OpenBLAS's sgemm
//! runs the mid-size models' products at 270–300 GFLOP/s on two cores where `gemm` gives
//! 175–275, and oneMKL's the whole Mistral step ~10 % faster than OpenBLAS's).
//!
//! Nothing links against the library: it is opened with `dlopen`, so a build needs no BLAS
//! and a machine without one runs the builtin products. The library's own thread pool is not
//! used: a product is split by output columns over rayon's threads, each calling the library
//! on one thread (two pools spinning on the same cores cost more than they save; gym's binary
//! sets `OPENBLAS_NUM_THREADS=1` before anything loads it). Results differ from the builtin
//! products only by f32 rounding (summation order).
//!
//! The library never reads the environment: the edge calls [`select`] once.

// The one place gym calls foreign code it loads itself: each `unsafe` block is commented.
#![allow(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Device, Layout, Storage, Tensor};
use rayon::prelude::*;

use crate::core::error::{Classify, ErrorClass};

/// Library names tried, in order, by [`Choice::Auto`].
/// oneMKL first: its sgemm ran the mid-size models' products ~10 % faster than OpenBLAS's on
/// this project's machines (docs/benchmarks.md).
const AUTO_NAMES: &[&str] = &[
    "libmkl_rt.so.3",
    "libmkl_rt.so.2",
    "libmkl_rt.so",
    "libopenblas.so.0",
    "libopenblas.so",
];

/// Which products to use (`--blas`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Choice {
    /// A system oneMKL (`libmkl_rt`) or OpenBLAS when one is installed, else builtin.
    #[default]
    Auto,
    /// candle's `gemm` crate only.
    Builtin,
    /// This CBLAS library (a path or a name `dlopen` finds); an error when it cannot be used.
    Library(PathBuf),
}

impl std::str::FromStr for Choice {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "auto" | "" => Choice::Auto,
            "builtin" => Choice::Builtin,
            other => Choice::Library(PathBuf::from(other)),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BlasError {
    #[error("BLAS library {path} (--blas / GYM_BLAS): {reason}; use `builtin` or `auto`")]
    Load { path: PathBuf, reason: String },
    #[error("the BLAS library is already selected ({0}); --blas is read once per process")]
    AlreadySelected(String),
}

impl Classify for BlasError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Usage
    }
}

/// `cblas_sgemm(order, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)` with
/// 32-bit integers (the LP64 interface every distribution's OpenBLAS exports).
type Sgemm = unsafe extern "C" fn(
    i32,
    i32,
    i32,
    i32,
    i32,
    i32,
    f32,
    *const f32,
    i32,
    *const f32,
    i32,
    f32,
    *mut f32,
    i32,
);

const ROW_MAJOR: i32 = 101;
const NO_TRANS: i32 = 111;
const TRANS: i32 = 112;

struct Cblas {
    sgemm: Sgemm,
    description: String,
    /// Keeps the library mapped for as long as `sgemm` may be called (the process).
    _lib: libloading::Library,
}

static CHOICE: OnceLock<Choice> = OnceLock::new();
static LOADED: OnceLock<Option<Cblas>> = OnceLock::new();

/// Chooses the products for this process; the first choice wins: a later different one, or
/// one after the first product (which fixes [`Choice::Auto`]), is an error. A named library is
/// loaded now, so a bad one fails here; `Auto` loads at the first product.
pub fn select(choice: Choice) -> Result<(), BlasError> {
    let chosen = CHOICE.get_or_init(|| choice.clone());
    if *chosen != choice {
        return Err(BlasError::AlreadySelected(format!("{chosen:?}")));
    }
    if let Choice::Library(path) = &choice {
        // the load error itself, not just "none loaded", names what is wrong with the path
        open(path)?;
        loaded();
    }
    Ok(())
}

fn loaded() -> Option<&'static Cblas> {
    LOADED
        .get_or_init(|| match CHOICE.get_or_init(Choice::default) {
            Choice::Auto => AUTO_NAMES.iter().find_map(|n| open(Path::new(n)).ok()),
            Choice::Library(p) => open(p).ok(),
            Choice::Builtin => None,
        })
        .as_ref()
}

/// Opens a CBLAS library and finds `cblas_sgemm`; caps an OpenBLAS or oneMKL at one thread
/// per call.
fn open(path: &Path) -> Result<Cblas, BlasError> {
    let err = |reason: String| BlasError::Load {
        path: path.to_path_buf(),
        reason,
    };
    // SAFETY: loading a shared library runs its initialisers; the user named it (or it is a
    // system OpenBLAS), which is the trust any linked BLAS gets.
    let lib = unsafe { libloading::Library::new(path.as_os_str()) }.map_err(|e| {
        // libloading's message is "dlopen failed"; the reason (no such file, wrong ELF
        // class, missing dependency) is its source
        let why = std::error::Error::source(&e).map(|s| s.to_string());
        err(why.unwrap_or_else(|| e.to_string()))
    })?;
    // SAFETY: `cblas_sgemm` has this signature in every CBLAS (LP64); a wrong type is not
    // detectable here, which is why only the standard symbol name is accepted.
    let sgemm: Sgemm = unsafe { lib.get::<Sgemm>(b"cblas_sgemm\0") }
        .map(|s| *s)
        .map_err(|_| err("has no cblas_sgemm".into()))?;
    let description = openblas_setup(&lib)
        .or_else(|| mkl_setup(&lib))
        .unwrap_or_else(|| path.display().to_string());
    Ok(Cblas {
        sgemm,
        description,
        _lib: lib,
    })
}

/// For an OpenBLAS: one thread per call (gym splits the products itself) and its name,
/// version and kernel family ("OpenBLAS 0.3.21 SkylakeX"); None for other libraries.
fn openblas_setup(lib: &libloading::Library) -> Option<String> {
    // SAFETY: OpenBLAS's documented `void openblas_set_num_threads(int)` and
    // `char *openblas_get_config(void)` / `char *openblas_get_corename(void)`, which return
    // static strings.
    unsafe {
        let set = lib
            .get::<unsafe extern "C" fn(i32)>(b"openblas_set_num_threads\0")
            .ok()?;
        set(1);
        let text = |sym: &[u8]| -> Option<String> {
            let f = lib
                .get::<unsafe extern "C" fn() -> *const std::ffi::c_char>(sym)
                .ok()?;
            let p = f();
            (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
        };
        let config = text(b"openblas_get_config\0").unwrap_or_default();
        let version: Vec<&str> = config.split_whitespace().take(2).collect();
        let name = match version.as_slice() {
            ["OpenBLAS", v] => format!("OpenBLAS {v}"),
            _ => "OpenBLAS".into(),
        };
        let core = text(b"openblas_get_corename\0").unwrap_or_default();
        Some(format!("{name} {core}").trim().to_string())
    }
}

/// For Intel's oneMKL (`libmkl_rt`): its sequential threading layer (one thread per call, no
/// OpenMP pool beside rayon's) and its version ("oneMKL 2025.3 …"); None for other libraries.
fn mkl_setup(lib: &libloading::Library) -> Option<String> {
    const MKL_THREADING_SEQUENTIAL: i32 = 1;
    // SAFETY: oneMKL's documented `int MKL_Set_Threading_Layer(int)`, to be called before any
    // other MKL function (nothing has run yet: the library was just opened), and
    // `void MKL_Get_Version_String(char *buf, int len)`, which writes a NUL-terminated string.
    unsafe {
        let set = lib
            .get::<unsafe extern "C" fn(i32) -> i32>(b"MKL_Set_Threading_Layer\0")
            .ok()?;
        set(MKL_THREADING_SEQUENTIAL);
        let version = lib
            .get::<unsafe extern "C" fn(*mut std::ffi::c_char, i32)>(b"MKL_Get_Version_String\0")
            .ok()
            .map(|f| {
                let mut buf = [0 as std::ffi::c_char; 198];
                f(buf.as_mut_ptr(), buf.len() as i32 - 1);
                std::ffi::CStr::from_ptr(buf.as_ptr())
                    .to_string_lossy()
                    .into_owned()
            })
            .unwrap_or_default();
        // "Intel(R) oneAPI Math Kernel Library Version 2025.3.0-Product Build …"
        let mut words = version.split_whitespace();
        let number = words.find(|w| *w == "Version").and(words.next());
        Some(match number {
            Some(v) => format!("oneMKL {}", v.trim_end_matches("-Product")),
            None => "oneMKL".into(),
        })
    }
}

/// What runs the products: "builtin gemm", "OpenBLAS 0.3.21 SkylakeX", or another library's
/// path.
pub fn describe() -> String {
    match loaded() {
        Some(c) => c.description.clone(),
        None => "builtin gemm".into(),
    }
}

/// Whether a system library runs the products.
pub fn is_system() -> bool {
    loaded().is_some()
}

/// How a tensor's last two dimensions (r, c) lie in its storage: `Some(false)` row-major,
/// `Some(true)` a transposed row-major (c, r) matrix, with the batch dimensions before them
/// packed (stride r·c) or, with `broadcast`, of stride 0; None otherwise.
fn matrix_order(l: &Layout, broadcast: bool) -> Option<bool> {
    let (dims, stride) = (l.dims(), l.stride());
    let n = dims.len();
    if n < 2 {
        return None;
    }
    let (r, c) = (dims[n - 2], dims[n - 1]);
    let (rs, cs) = (stride[n - 2], stride[n - 1]);
    let transposed = if (cs == 1 || c == 1) && (rs == c || r == 1) {
        false
    } else if (rs == 1 || r == 1) && (cs == r || c == 1) {
        true
    } else {
        return None;
    };
    let mut want = r * c;
    for i in (0..n - 2).rev() {
        if !(stride[i] == want || (broadcast && stride[i] == 0) || dims[i] == 1) {
            return None;
        }
        want *= dims[i];
    }
    Some(transposed)
}

/// a (…, m, k) · b (…, k, n) for graph-less f32 CPU tensors with the same batch dimensions
/// (or a 2-D b shared by every batch entry), either operand possibly a transposed view (`t()`),
/// through the system library when one is selected; otherwise (other dtypes or devices,
/// tensors in a graph, other layouts, builtin products) candle's `matmul`.
pub fn matmul(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    match loaded() {
        Some(lib) if can_use_system(a, b) => system_matmul(lib, a, b),
        _ => a.broadcast_matmul(b),
    }
}

fn can_use_system(a: &Tensor, b: &Tensor) -> bool {
    let f32_cpu = |t: &Tensor| t.dtype() == DType::F32 && t.device().is_cpu() && !t.track_op();
    let (ad, bd) = (a.dims(), b.dims());
    f32_cpu(a)
        && f32_cpu(b)
        && ad.len() >= 2
        && (bd.len() == 2 || bd.len() == ad.len() && bd[..bd.len() - 2] == ad[..ad.len() - 2])
        && ad[ad.len() - 1] == bd[bd.len() - 2]
}

fn system_matmul(lib: &Cblas, a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let (ad, bd) = (a.dims(), b.dims());
    let (m, k, n) = (ad[ad.len() - 2], ad[ad.len() - 1], bd[bd.len() - 1]);
    let batch: usize = ad[..ad.len() - 2].iter().product();
    let b_shared = bd.len() == 2;
    let (a, b) = (
        contiguous_matrices(a, false)?,
        contiguous_matrices(b, b_shared)?,
    );
    let (a_s, a_l) = a.storage_and_layout();
    let (b_s, b_l) = b.storage_and_layout();
    let (Storage::Cpu(CpuStorage::F32(av)), Storage::Cpu(CpuStorage::F32(bv))) = (&*a_s, &*b_s)
    else {
        return Err(candle_core::Error::Msg(
            "blas: expected f32 CPU storage".into(),
        ));
    };
    let t = Transposed {
        a: matrix_order(a_l, false) == Some(true),
        b: matrix_order(b_l, b_shared) == Some(true),
    };
    let (a0, b0) = (a_l.start_offset(), b_l.start_offset());
    let mut out = Vec::with_capacity(batch * m * n);
    for i in 0..batch {
        let ai = a0 + i * m * k;
        let bi = if b_shared { b0 } else { b0 + i * k * n };
        out.extend(system_product(
            lib,
            &av[ai..ai + m * k],
            &bv[bi..bi + k * n],
            (m, n, k),
            t,
        ));
    }
    let mut dims = ad[..ad.len() - 2].to_vec();
    dims.extend([m, n]);
    Tensor::from_vec(out, dims, &Device::Cpu)
}

/// `t` itself when [`matrix_order`] can describe its layout, else a contiguous copy.
fn contiguous_matrices(t: &Tensor, broadcast: bool) -> candle_core::Result<Tensor> {
    let ok = matrix_order(t.layout(), broadcast).is_some();
    if ok { Ok(t.clone()) } else { t.contiguous() }
}

/// A raw output pointer shared by the threads that write disjoint column ranges of it.
#[derive(Clone, Copy)]
struct Out(*mut f32);
impl Out {
    /// The element at offset `i` (a method, so closures capture the whole `Out`, which is
    /// Send, rather than its raw pointer field).
    ///
    /// # Safety
    /// `i` is within the output.
    unsafe fn at(self, i: usize) -> *mut f32 {
        // SAFETY: the caller keeps i inside the allocation.
        unsafe { self.0.add(i) }
    }
}

// SAFETY: each thread writes only its own columns (see `system_product`).
unsafe impl Send for Out {}
// SAFETY: as above.
unsafe impl Sync for Out {}

/// c (m, n) = a (m, k) · b', row-major, where b' = bᵀ for b (n, k) when `b_t`, else b (k, n).
/// `a`'s layout is contiguous (any shape of m·k elements); `b`'s is 2-D, (n, k) or (k, n).
/// The system library takes contiguous f32 operands; anything else goes to candle's product.
pub fn product(
    a: (&CpuStorage, &Layout),
    b: (&CpuStorage, &Layout),
    (m, n, k): (usize, usize, usize),
    b_t: bool,
) -> candle_core::Result<CpuStorage> {
    product_on(loaded(), a, b, (m, n, k), b_t)
}

/// [`product`] through `lib`, or candle's product when None (tests run both).
fn product_on(
    lib: Option<&Cblas>,
    a: (&CpuStorage, &Layout),
    b: (&CpuStorage, &Layout),
    (m, n, k): (usize, usize, usize),
    b_t: bool,
) -> candle_core::Result<CpuStorage> {
    let flags = Transposed { a: false, b: b_t };
    if let (Some(lib), CpuStorage::F32(av), CpuStorage::F32(bv), true, true) =
        (lib, a.0, b.0, a.1.is_contiguous(), b.1.is_contiguous())
    {
        let (a0, b0) = (a.1.start_offset(), b.1.start_offset());
        if av.len() >= a0 + m * k && bv.len() >= b0 + n * k {
            let c = system_product(
                lib,
                &av[a0..a0 + m * k],
                &bv[b0..b0 + n * k],
                (m, n, k),
                flags,
            );
            return Ok(CpuStorage::F32(c));
        }
    }
    let al = Layout::contiguous_with_offset((m, k), a.1.start_offset());
    let bl = if b_t {
        b.1.transpose(0, 1)?
    } else {
        b.1.clone()
    };
    a.0.matmul(b.0, (1, m, n, k), &al, &bl)
}

/// f32 per piece of [`product_by_pieces`]: 128 Ki (512 KiB), so a piece is made and multiplied
/// while it is in the core's L2 cache. On mid-size Mistral (MKL, two threads) pieces of 64–256
/// Ki values gave 318–323 tokens/s, pieces of 1 Mi 300–304.
const PIECE: usize = 1 << 17;

thread_local! {
    /// This thread's buffer for the pieces of [`product_by_pieces`].
    static PIECE_BUF: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// c (m, n) = a (m, k) · b', with b' made piece by piece: for the output columns j0..j1,
/// `fill(j0..j1, buf)` writes b's part, with `b_t` rows j0..j1 of b stored (n, k), else the
/// (k, j1 − j0) slab of columns j0..j1 of b stored (k, n). The pieces (multiples of 64
/// columns, about [`PIECE`] values) run over rayon's threads, each made and multiplied on one
/// thread while it is in cache: a frozen NF4 weight is never dequantized whole.
pub fn product_by_pieces(
    a: &[f32],
    (m, n, k): (usize, usize, usize),
    b_t: bool,
    fill: &(dyn Fn(std::ops::Range<usize>, &mut [f32]) + Sync),
) -> Vec<f32> {
    product_by_pieces_on(loaded(), a, (m, n, k), b_t, fill)
}

/// [`product_by_pieces`] through `lib`, or the `gemm` crate when None (tests run both).
fn product_by_pieces_on(
    lib: Option<&Cblas>,
    a: &[f32],
    (m, n, k): (usize, usize, usize),
    b_t: bool,
    fill: &(dyn Fn(std::ops::Range<usize>, &mut [f32]) + Sync),
) -> Vec<f32> {
    assert!(a.len() >= m * k, "product_by_pieces: sizes");
    if m == 0 || n == 0 || k == 0 {
        return vec![0f32; m * n];
    }
    let threads = rayon::current_num_threads().max(1);
    let by_size = (PIECE / k).max(64) / 64 * 64;
    let width = by_size
        .min(n.div_ceil(threads).next_multiple_of(64))
        .max(64);
    // not zeroed: every element is written (beta = 0) by exactly one piece
    let mut c = Vec::<f32>::with_capacity(m * n);
    let out = Out(c.as_mut_ptr());
    (0..n.div_ceil(width)).into_par_iter().for_each(|i| {
        let cols = i * width..((i + 1) * width).min(n);
        PIECE_BUF.with(|buf| {
            let mut buf = buf.borrow_mut();
            buf.resize(cols.len() * k, 0.0);
            fill(cols.clone(), &mut buf);
            // SAFETY: this piece writes only the columns `cols` of c (m, n, row stride n),
            // which no other piece touches; `buf` holds cols.len()·k values.
            unsafe { piece_gemm(lib, out.at(cols.start), a, &buf, (m, cols.len(), k), n, b_t) };
        });
    });
    // SAFETY: the pieces cover columns 0..n of all m rows, each written above.
    unsafe { c.set_len(m * n) };
    c
}

/// c (m, w; row stride ldc) = a (m, k) · b', where b' is b stored (w, k) transposed when
/// `b_t`, else b stored (k, w); on this thread.
///
/// # Safety
/// c must point to m rows of w writable values at stride ldc that nothing else accesses.
unsafe fn piece_gemm(
    lib: Option<&Cblas>,
    c: *mut f32,
    a: &[f32],
    b: &[f32],
    (m, w, k): (usize, usize, usize),
    ldc: usize,
    b_t: bool,
) {
    if let Some(lib) = lib {
        let (tb, ldb) = if b_t { (TRANS, k) } else { (NO_TRANS, w) };
        // SAFETY: a is m·k, b w·k values; c as the caller promises.
        unsafe {
            (lib.sgemm)(
                ROW_MAJOR,
                NO_TRANS,
                tb,
                m as i32,
                w as i32,
                k as i32,
                1.0,
                a.as_ptr(),
                k as i32,
                b.as_ptr(),
                ldb as i32,
                0.0,
                c,
                ldc as i32,
            )
        };
        return;
    }
    let (rhs_cs, rhs_rs) = if b_t { (k, 1) } else { (1, w) };
    // SAFETY: as above; gemm writes dst = 1·lhs·rhs without reading it.
    unsafe {
        gemm::gemm(
            m,
            w,
            k,
            c,
            1,
            ldc as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// A row-major f32 matrix operand: its values, its row stride, and whether it is stored
/// transposed (a (k, m) stored for a' = aᵀ (m, k)).
#[derive(Debug, Clone, Copy)]
pub struct Mat<'a> {
    pub v: &'a [f32],
    pub ld: usize,
    pub t: bool,
}

impl Mat<'_> {
    /// Whether the operand holds the (rows, cols) matrix it stands for.
    fn fits(&self, (rows, cols): (usize, usize)) -> bool {
        let (r, c) = if self.t { (cols, rows) } else { (rows, cols) };
        c <= self.ld && (r == 0 || c == 0 || (r - 1) * self.ld + c <= self.v.len())
    }

    /// (column stride, row stride) of the matrix it stands for, for the `gemm` crate.
    fn strides(&self) -> (isize, isize) {
        if self.t {
            (self.ld as isize, 1)
        } else {
            (1, self.ld as isize)
        }
    }
}

/// c (m, n; row stride ldc) = alpha·a'·b' + beta·c, on the calling thread only (the system
/// library, which runs its products on the caller's thread, or the `gemm` crate without
/// parallelism): for callers that already split their work over rayon's threads, such as
/// attention's blocks. With beta = 0, c is not read.
pub fn gemm_here(
    c: &mut [f32],
    ldc: usize,
    a: Mat,
    b: Mat,
    (m, n, k): (usize, usize, usize),
    (alpha, beta): (f32, f32),
) {
    gemm_here_on(loaded(), c, ldc, a, b, (m, n, k), (alpha, beta))
}

/// [`gemm_here`] through `lib`, or the `gemm` crate when None (tests run both).
fn gemm_here_on(
    lib: Option<&Cblas>,
    c: &mut [f32],
    ldc: usize,
    a: Mat,
    b: Mat,
    (m, n, k): (usize, usize, usize),
    (alpha, beta): (f32, f32),
) {
    assert!(
        a.fits((m, k)) && b.fits((k, n)) && n <= ldc && (m == 0 || (m - 1) * ldc + n <= c.len()),
        "gemm_here: sizes"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for row in c.chunks_mut(ldc).take(m) {
            // beta = 0 does not read c (0·NaN would stay NaN)
            row[..n]
                .iter_mut()
                .for_each(|x| *x = if beta == 0.0 { 0.0 } else { *x * beta });
        }
        return;
    }
    if let Some(lib) = lib {
        let t = |op: &Mat| if op.t { TRANS } else { NO_TRANS };
        // SAFETY: the operands hold the (m, k), (k, n) and (m, n) matrices at their strides
        // (asserted above); c is borrowed mutably, so nothing else accesses it.
        unsafe {
            (lib.sgemm)(
                ROW_MAJOR,
                t(&a),
                t(&b),
                m as i32,
                n as i32,
                k as i32,
                alpha,
                a.v.as_ptr(),
                a.ld as i32,
                b.v.as_ptr(),
                b.ld as i32,
                beta,
                c.as_mut_ptr(),
                ldc as i32,
            )
        };
        return;
    }
    let ((acs, ars), (bcs, brs)) = (a.strides(), b.strides());
    // SAFETY: as above; gemm computes dst = beta·dst + alpha·lhs·rhs, reading dst only when
    // beta ≠ 0.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            beta != 0.0,
            a.v.as_ptr(),
            acs,
            ars,
            b.v.as_ptr(),
            bcs,
            brs,
            beta,
            alpha,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Which operands of a product are stored transposed: a as (k, m), b as (n, k).
#[derive(Debug, Clone, Copy)]
pub struct Transposed {
    pub a: bool,
    pub b: bool,
}

/// c (m, n) += alpha · a' · b' on row-major f32 slices, where a' is a (m, k), or aᵀ for a
/// stored (k, m) when `t.a`, and b' is b (k, n), or bᵀ for b stored (n, k) when `t.b`: the
/// system library (beta = 1), else the `gemm` crate reading the destination.
pub fn accumulate(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    (m, n, k): (usize, usize, usize),
    t: Transposed,
    alpha: f32,
) {
    accumulate_on(loaded(), c, a, b, (m, n, k), t, alpha)
}

/// [`accumulate`] through `lib`, or the `gemm` crate when None (tests run both).
fn accumulate_on(
    lib: Option<&Cblas>,
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    (m, n, k): (usize, usize, usize),
    t: Transposed,
    alpha: f32,
) {
    assert!(
        c.len() == m * n && a.len() == m * k && b.len() == n * k,
        "accumulate: sizes"
    );
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    if let Some(lib) = lib {
        return system_gemm(
            lib,
            (Out(c.as_mut_ptr()), c.len()),
            a,
            b,
            (m, n, k),
            t,
            (alpha, 1.0),
        );
    }
    let (lhs_cs, lhs_rs) = if t.a { (m, 1) } else { (1, k) };
    let (rhs_cs, rhs_rs) = if t.b { (k, 1) } else { (1, n) };
    let threads = rayon::current_num_threads();
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the sizes are checked above; the strides describe exactly those row-major
    // (or transposed) buffers; gemm computes dst = 1·dst + alpha·lhs·rhs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            true,
            a.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            b.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            alpha,
            false,
            false,
            false,
            par,
        )
    }
}

/// The system library's product into a new buffer.
fn system_product(
    lib: &Cblas,
    a: &[f32],
    b: &[f32],
    (m, n, k): (usize, usize, usize),
    t: Transposed,
) -> Vec<f32> {
    if m == 0 || n == 0 || k == 0 {
        return vec![0f32; m * n];
    }
    // not zeroed: with beta = 0 the library writes every element without reading it
    let mut c = Vec::<f32>::with_capacity(m * n);
    system_gemm(
        lib,
        (Out(c.as_mut_ptr()), m * n),
        a,
        b,
        (m, n, k),
        t,
        (1.0, 0.0),
    );
    // SAFETY: system_gemm's parts cover all m·n elements, each written above.
    unsafe { c.set_len(m * n) };
    c
}

/// c = alpha·a'·b' + beta·c through the system library, split over rayon's threads by
/// output columns (parts of at least 64, multiples of 16) or, when the output is narrow (a
/// LoRA rank), by rows. m, n, k > 0. `c` is the output and its length; with beta = 0 it
/// may be uninitialised (BLAS does not read C then).
fn system_gemm(
    lib: &Cblas,
    (out, c_len): (Out, usize),
    a: &[f32],
    b: &[f32],
    (m, n, k): (usize, usize, usize),
    t: Transposed,
    (alpha, beta): (f32, f32),
) {
    assert!(c_len >= m * n && a.len() >= m * k && b.len() >= n * k && m * n * k > 0);
    let threads = rayon::current_num_threads().max(1);
    let by_rows = n < 64 * threads && m >= 32 * threads;
    let (len, min) = if by_rows { (m, 16) } else { (n, 64) };
    let parts = threads.min(len.div_ceil(min)).max(1);
    let width = len.div_ceil(parts).div_ceil(16) * 16;
    let (ta, lda) = if t.a { (TRANS, m) } else { (NO_TRANS, k) };
    let (tb, ldb) = if t.b { (TRANS, k) } else { (NO_TRANS, n) };
    (0..parts).into_par_iter().for_each(|i| {
        let start = i * width;
        if start >= len {
            return;
        }
        let size = width.min(len - start);
        // offsets of this part's rows of a and c, or columns of b and c
        let (rows, cols, a_off, b_off, c_off) = match (by_rows, t.a, t.b) {
            (true, ta, _) => (size, n, if ta { start } else { start * k }, 0, start * n),
            (false, _, tb) => (m, size, 0, if tb { start * k } else { start }, start),
        };
        // SAFETY: a is m·k, b n·k and c m·n elements, all > 0 (asserted above); this call
        // reads its rows of a (or columns of b) and writes its rows (or columns) of c, which
        // no other part touches; the leading dimensions are those of the whole matrices.
        unsafe {
            (lib.sgemm)(
                ROW_MAJOR,
                ta,
                tb,
                rows as i32,
                cols as i32,
                k as i32,
                alpha,
                a.as_ptr().add(a_off),
                lda as i32,
                b.as_ptr().add(b_off),
                ldb as i32,
                beta,
                out.at(c_off),
                n as i32,
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    fn reference(a: &[f32], b: &[f32], (m, n, k): (usize, usize, usize), b_t: bool) -> Vec<f64> {
        let mut c = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|p| {
                        let bv = if b_t { b[j * k + p] } else { b[p * n + j] };
                        a[i * k + p] as f64 * bv as f64
                    })
                    .sum();
            }
        }
        c
    }

    /// The products to test: the builtin (None), the one `auto` loaded, and oneMKL when
    /// GYM_TEST_MKL names its `libmkl_rt` (CI: from PyPI, with GYM_REQUIRE_MKL set).
    fn test_libs() -> Vec<Option<&'static Cblas>> {
        static MKL: OnceLock<Option<Cblas>> = OnceLock::new();
        let mkl = MKL.get_or_init(|| {
            let path = std::env::var_os("GYM_TEST_MKL")?;
            let lib = open(Path::new(&path)).expect("GYM_TEST_MKL");
            assert!(
                lib.description.starts_with("oneMKL 20"),
                "{}",
                lib.description
            );
            Some(lib)
        });
        if std::env::var_os("GYM_REQUIRE_MKL").is_some() {
            assert!(
                mkl.is_some(),
                "GYM_REQUIRE_MKL is set but GYM_TEST_MKL is not"
            );
        }
        let mut libs = vec![None];
        libs.extend(loaded().map(Some));
        libs.extend(mkl.as_ref().map(Some));
        libs
    }

    /// A product whose right operand is made piece by piece (the NF4 base's path) equals the
    /// f64 reference on every library, for both layouts of b, with pieces that end inside
    /// the 64-column grid and sizes of more and fewer pieces than threads.
    #[test]
    fn products_by_pieces_match_an_f64_reference() {
        select(Choice::Auto).expect("auto");
        for lib in test_libs() {
            for (m, n, k) in [
                (1, 1, 1),
                (3, 200, 17),
                (33, 1000, 700),
                (5, 64, 0),
                (2, 70, 3),
            ] {
                for b_t in [false, true] {
                    let a = lcg(m * k, 1);
                    let b = lcg(n * k, 2);
                    let fill = |cols: std::ops::Range<usize>, buf: &mut [f32]| {
                        assert_eq!(buf.len(), cols.len() * k);
                        for (p, j) in cols.clone().enumerate() {
                            for q in 0..k {
                                if b_t {
                                    buf[p * k + q] = b[j * k + q];
                                } else {
                                    buf[q * cols.len() + p] = b[q * n + j];
                                }
                            }
                        }
                    };
                    let c = product_by_pieces_on(lib, &a, (m, n, k), b_t, &fill);
                    let want = reference(&a, &b, (m, n, k), b_t);
                    assert_eq!(c.len(), m * n);
                    for (got, want) in c.iter().zip(&want) {
                        assert!(
                            (*got as f64 - want).abs() <= 1e-5 * (1.0 + k as f64),
                            "{m}x{n}x{k} b_t={b_t}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    /// gemm_here on sub-blocks of larger matrices (row strides wider than the operands), every
    /// transpose combination, beta 0 (c not read: NaN there stays out) and beta 1, against an
    /// f64 reference, on every library.
    #[test]
    fn products_on_this_thread_match_an_f64_reference() {
        select(Choice::Auto).expect("auto");
        for lib in test_libs() {
            for (m, n, k) in [(1, 1, 1), (7, 5, 3), (40, 33, 70), (3, 4, 0)] {
                for (ta, tb, beta) in [
                    (false, false, 0.0),
                    (false, true, 1.0),
                    (true, false, 0.0),
                    (true, true, 1.0),
                ] {
                    let (ar, ac) = if ta { (k, m) } else { (m, k) };
                    let (br, bc) = if tb { (n, k) } else { (k, n) };
                    let (lda, ldb, ldc) = (ac + 3, bc + 1, n + 2);
                    let a = lcg(ar.max(1) * lda, 3);
                    let b = lcg(br.max(1) * ldb, 4);
                    let fill = if beta == 0.0 { f32::NAN } else { 0.5 };
                    let mut c = vec![fill; m * ldc];
                    let at = |i: usize, p: usize| if ta { a[p * lda + i] } else { a[i * lda + p] };
                    let bt = |p: usize, j: usize| if tb { b[j * ldb + p] } else { b[p * ldb + j] };
                    gemm_here_on(
                        lib,
                        &mut c,
                        ldc,
                        Mat {
                            v: &a,
                            ld: lda,
                            t: ta,
                        },
                        Mat {
                            v: &b,
                            ld: ldb,
                            t: tb,
                        },
                        (m, n, k),
                        (0.5, beta),
                    );
                    for i in 0..m {
                        for j in 0..ldc {
                            let got = c[i * ldc + j];
                            if j >= n {
                                assert!(got.is_nan() || got == 0.5, "written outside: {got}");
                                continue;
                            }
                            let dot: f64 = (0..k).map(|p| at(i, p) as f64 * bt(p, j) as f64).sum();
                            let want = 0.5 * dot + if beta == 0.0 { 0.0 } else { 0.5 };
                            assert!(
                                (got as f64 - want).abs() <= 1e-5 * (1.0 + k as f64),
                                "{m}x{n}x{k} ta={ta} tb={tb} beta={beta}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// The products, candle's and (where one is installed: CI installs OpenBLAS and sets
    /// GYM_REQUIRE_BLAS=1) the system library's, against an f64 reference, on shapes that
    /// split unevenly over the threads, with offsets.
    #[test]
    fn products_match_an_f64_reference() {
        select(Choice::Auto).expect("auto");
        if std::env::var_os("GYM_REQUIRE_BLAS").is_some() {
            assert!(
                is_system(),
                "GYM_REQUIRE_BLAS is set but no system BLAS loaded"
            );
        }
        let libs = test_libs();
        let shapes = [
            (1, 1, 1),
            (3, 200, 17),
            (64, 1000, 96),
            (5, 64, 0),
            (7, 130, 33),
        ];
        for ((m, n, k), lib) in shapes
            .iter()
            .flat_map(|&s| libs.iter().map(move |&l| (s, l)))
        {
            for b_t in [false, true] {
                let a = lcg(m * k + 3, 1);
                let b = lcg(n * k + 5, 2);
                let (sa, sb) = (CpuStorage::F32(a.clone()), CpuStorage::F32(b.clone()));
                let la = Layout::contiguous_with_offset((m, k), 3);
                let lb = Layout::contiguous_with_offset(if b_t { (n, k) } else { (k, n) }, 5);
                let dims = (m, n, k);
                let CpuStorage::F32(c) =
                    product_on(lib, (&sa, &la), (&sb, &lb), dims, b_t).unwrap()
                else {
                    panic!("f32 product")
                };
                let want = reference(&a[3..], &b[5..], (m, n, k), b_t);
                assert_eq!(c.len(), m * n, "{m}x{n}x{k} b_t={b_t}");
                for (got, want) in c.iter().zip(&want) {
                    assert!(
                        (*got as f64 - want).abs() <= 1e-5 * (1.0 + k as f64),
                        "{m}x{n}x{k}"
                    );
                }
            }
        }
    }

    /// c += alpha·a'·b' through the system library (when loaded) and through the `gemm` crate,
    /// for every transposition, against an f64 reference; sizes that split by rows and by
    /// columns over the threads.
    #[test]
    fn accumulate_matches_an_f64_reference_on_both_paths() {
        select(Choice::Auto).expect("auto");
        for lib in test_libs() {
            for (m, n, k) in [(70, 16, 33), (5, 300, 9), (1, 1, 1), (130, 130, 64)] {
                for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                    let (a, b, c0) = (lcg(m * k, 3), lcg(n * k, 4), lcg(m * n, 5));
                    let mut c = c0.clone();
                    let t = Transposed { a: ta, b: tb };
                    accumulate_on(lib, &mut c, &a, &b, (m, n, k), t, 0.75);
                    let what = format!("{m}x{n}x{k} ta={ta} tb={tb} lib={}", lib.is_some());
                    for i in 0..m {
                        for j in 0..n {
                            let dot: f64 = (0..k)
                                .map(|p| {
                                    let av = if ta { a[p * m + i] } else { a[i * k + p] };
                                    let bv = if tb { b[j * k + p] } else { b[p * n + j] };
                                    av as f64 * bv as f64
                                })
                                .sum();
                            let want = c0[i * n + j] as f64 + 0.75 * dot;
                            let got = c[i * n + j] as f64;
                            assert!((got - want).abs() <= 1e-5 * (1.0 + k as f64), "{what}");
                        }
                    }
                }
            }
        }
    }

    /// The tensor-level product: batched operands, transposed views (`t()`), a shared 2-D
    /// right operand, against candle's own `matmul`; and a tensor in a graph keeps its graph.
    #[test]
    fn tensor_products_match_candles_and_keep_graphs() {
        select(Choice::Auto).expect("auto");
        let d = Device::Cpu;
        let t = |dims: &[usize], seed| {
            Tensor::from_vec(lcg(dims.iter().product(), seed), dims, &d).unwrap()
        };
        let tr = |x: Tensor| x.transpose(x.rank() - 2, x.rank() - 1).unwrap();
        let cases = [
            (t(&[2, 3, 40, 24], 1), t(&[2, 3, 24, 70], 2)),
            (tr(t(&[2, 3, 24, 40], 3)), tr(t(&[2, 3, 70, 24], 4))),
            (t(&[50, 24], 5), tr(t(&[70, 24], 6))),
            (t(&[4, 50, 24], 7), t(&[24, 70], 8)),
        ];
        for (a, b) in cases {
            let flat = |x: Tensor| x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let got = flat(matmul(&a, &b).unwrap());
            let want = flat(a.broadcast_matmul(&b).unwrap());
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-4,
                    "{:?}·{:?}: {g} vs {w}",
                    a.dims(),
                    b.dims()
                );
            }
        }
        let v = candle_core::Var::from_tensor(&t(&[5, 24], 9)).unwrap();
        let y = matmul(v.as_tensor(), &t(&[24, 3], 10)).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert!(
            grads.get(v.as_tensor()).is_some(),
            "the product lost the graph"
        );
    }

    #[test]
    fn a_library_that_cannot_be_loaded_is_a_usage_error_naming_it() {
        let err = open(Path::new("/nonexistent/libnot-a-blas.so"))
            .err()
            .expect("an error");
        assert_eq!(err.class(), ErrorClass::Usage);
        assert!(
            err.to_string().contains("/nonexistent/libnot-a-blas.so"),
            "{err}"
        );
        let err = open(Path::new("libc.so.6"))
            .err()
            .expect("libc has no cblas_sgemm");
        assert!(err.to_string().contains("no cblas_sgemm"), "{err}");
    }
}
