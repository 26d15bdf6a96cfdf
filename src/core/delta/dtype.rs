//! Element types: one code per safetensors dtype.

/// Tensor element type. Codes are fixed by the DELTA v1 spec; names are safetensors' names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    Bool,
    U8,
    I8,
    I16,
    U16,
    F16,
    Bf16,
    I32,
    U32,
    F32,
    F64,
    I64,
    U64,
    F8E5M2,
    F8E4M3,
    F8E8M0,
    F8E4M3Fnuz,
    F8E5M2Fnuz,
    C64,
    F4,
    F6E2M3,
    F6E3M2,
}

const ALL: [Dtype; 22] = [
    Dtype::Bool,
    Dtype::U8,
    Dtype::I8,
    Dtype::I16,
    Dtype::U16,
    Dtype::F16,
    Dtype::Bf16,
    Dtype::I32,
    Dtype::U32,
    Dtype::F32,
    Dtype::F64,
    Dtype::I64,
    Dtype::U64,
    Dtype::F8E5M2,
    Dtype::F8E4M3,
    Dtype::F8E8M0,
    Dtype::F8E4M3Fnuz,
    Dtype::F8E5M2Fnuz,
    Dtype::C64,
    Dtype::F4,
    Dtype::F6E2M3,
    Dtype::F6E3M2,
];

impl Dtype {
    pub fn all() -> &'static [Dtype] {
        &ALL
    }

    /// The code stored in the file: the index in the table of `docs/delta-format.md`.
    pub fn code(self) -> u8 {
        ALL.iter()
            .position(|d| *d == self)
            .expect("every dtype is in ALL") as u8
    }

    pub fn from_code(c: u8) -> Option<Self> {
        ALL.get(c as usize).copied()
    }

    /// Bits per element.
    pub fn bits(self) -> u64 {
        use Dtype::*;
        match self {
            F4 => 4,
            F6E2M3 | F6E3M2 => 6,
            Bool | U8 | I8 | F8E5M2 | F8E4M3 | F8E8M0 | F8E4M3Fnuz | F8E5M2Fnuz => 8,
            I16 | U16 | F16 | Bf16 => 16,
            I32 | U32 | F32 => 32,
            F64 | I64 | U64 | C64 => 64,
        }
    }

    /// The safetensors name.
    pub fn name(self) -> &'static str {
        use Dtype::*;
        match self {
            Bool => "BOOL",
            U8 => "U8",
            I8 => "I8",
            I16 => "I16",
            U16 => "U16",
            F16 => "F16",
            Bf16 => "BF16",
            I32 => "I32",
            U32 => "U32",
            F32 => "F32",
            F64 => "F64",
            I64 => "I64",
            U64 => "U64",
            F8E5M2 => "F8_E5M2",
            F8E4M3 => "F8_E4M3",
            F8E8M0 => "F8_E8M0",
            F8E4M3Fnuz => "F8_E4M3FNUZ",
            F8E5M2Fnuz => "F8_E5M2FNUZ",
            C64 => "C64",
            F4 => "F4",
            F6E2M3 => "F6_E2M3",
            F6E3M2 => "F6_E3M2",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        ALL.iter().copied().find(|d| d.name() == s)
    }

    pub fn from_safetensors(d: safetensors::Dtype) -> Option<Self> {
        Self::from_name(&format!("{d:?}"))
    }

    pub fn to_safetensors(self) -> safetensors::Dtype {
        use safetensors::Dtype as S;
        match self {
            Dtype::Bool => S::BOOL,
            Dtype::U8 => S::U8,
            Dtype::I8 => S::I8,
            Dtype::I16 => S::I16,
            Dtype::U16 => S::U16,
            Dtype::F16 => S::F16,
            Dtype::Bf16 => S::BF16,
            Dtype::I32 => S::I32,
            Dtype::U32 => S::U32,
            Dtype::F32 => S::F32,
            Dtype::F64 => S::F64,
            Dtype::I64 => S::I64,
            Dtype::U64 => S::U64,
            Dtype::F8E5M2 => S::F8_E5M2,
            Dtype::F8E4M3 => S::F8_E4M3,
            Dtype::F8E8M0 => S::F8_E8M0,
            Dtype::F8E4M3Fnuz => S::F8_E4M3FNUZ,
            Dtype::F8E5M2Fnuz => S::F8_E5M2FNUZ,
            Dtype::C64 => S::C64,
            Dtype::F4 => S::F4,
            Dtype::F6E2M3 => S::F6_E2M3,
            Dtype::F6E3M2 => S::F6_E3M2,
        }
    }

    /// Byte size of `elements` elements, or `None` when it is not a whole number of bytes or
    /// overflows.
    pub fn byte_len(self, elements: u64) -> Option<u64> {
        let bits = elements.checked_mul(self.bits())?;
        if bits % 8 != 0 {
            return None;
        }
        Some(bits / 8)
    }

    /// Converts element `i` of little-endian `bytes` to f64, for numeric comparisons. `None` for
    /// types without a meaningful real value here (sub-byte floats, FP8, complex).
    pub fn element_f64(self, b: &[u8]) -> Option<f64> {
        use Dtype::*;
        Some(match self {
            Bool => (b[0] != 0) as u8 as f64,
            U8 => b[0] as f64,
            I8 => b[0] as i8 as f64,
            I16 => i16::from_le_bytes([b[0], b[1]]) as f64,
            U16 => u16::from_le_bytes([b[0], b[1]]) as f64,
            F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f64(),
            Bf16 => half::bf16::from_le_bytes([b[0], b[1]]).to_f64(),
            I32 => i32::from_le_bytes(b[..4].try_into().ok()?) as f64,
            U32 => u32::from_le_bytes(b[..4].try_into().ok()?) as f64,
            F32 => f32::from_le_bytes(b[..4].try_into().ok()?) as f64,
            F64 => f64::from_le_bytes(b[..8].try_into().ok()?),
            I64 => i64::from_le_bytes(b[..8].try_into().ok()?) as f64,
            U64 => u64::from_le_bytes(b[..8].try_into().ok()?) as f64,
            _ => return None,
        })
    }

    pub fn is_numeric(self) -> bool {
        use Dtype::*;
        matches!(
            self,
            Bool | U8 | I8 | I16 | U16 | F16 | Bf16 | I32 | U32 | F32 | F64 | I64 | U64
        )
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_cover_safetensors() {
        for (i, d) in Dtype::all().iter().enumerate() {
            assert_eq!(d.code() as usize, i);
            assert_eq!(Dtype::from_code(i as u8), Some(*d));
            assert_eq!(Dtype::from_safetensors(d.to_safetensors()), Some(*d));
            assert_eq!(d.to_safetensors().bitsize() as u64, d.bits());
        }
        assert_eq!(Dtype::from_code(22), None);
    }
}
