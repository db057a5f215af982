//! [`Tensor`]: a contiguous, typed output buffer with a shape, and `.npy` export.

use std::io::Write;

use half::f16;

use crate::error::{Error, Result};
use crate::spec::{DType, Layout};

/// Typed storage of a tensor (keeps the buffer aligned for its element type).
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum TensorData {
    /// 8-bit unsigned elements.
    U8(Vec<u8>),
    /// IEEE half floats.
    F16(Vec<f16>),
    /// 32-bit floats.
    F32(Vec<f32>),
}

impl TensorData {
    /// Zero-filled storage of `len` elements.
    pub fn zeros(dtype: DType, len: usize) -> TensorData {
        match dtype {
            DType::U8 => TensorData::U8(vec![0; len]),
            DType::F16 => TensorData::F16(vec![f16::ZERO; len]),
            DType::F32 => TensorData::F32(vec![0.0; len]),
        }
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::U8(_) => DType::U8,
            TensorData::F16(_) => DType::F16,
            TensorData::F32(_) => DType::F32,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::U8(v) => v.len(),
            TensorData::F16(v) => v.len(),
            TensorData::F32(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as raw little-endian bytes (zero-copy).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            TensorData::U8(v) => v,
            TensorData::F16(v) => bytemuck::cast_slice(v),
            TensorData::F32(v) => bytemuck::cast_slice(v),
        }
    }

    /// Mutable raw bytes (zero-copy), for filling from a device readback.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        match self {
            TensorData::U8(v) => v,
            TensorData::F16(v) => bytemuck::cast_slice_mut(v),
            TensorData::F32(v) => bytemuck::cast_slice_mut(v),
        }
    }

    /// Element `i` as f32 (u8 and f16 converted exactly).
    pub fn get_f32(&self, i: usize) -> Option<f32> {
        match self {
            TensorData::U8(v) => v.get(i).map(|&x| x as f32),
            TensorData::F16(v) => v.get(i).map(|x| x.to_f32()),
            TensorData::F32(v) => v.get(i).copied(),
        }
    }
}

impl std::fmt::Debug for TensorData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.dtype().name(), self.len())
    }
}

/// A dense tensor: `shape` (row-major), `layout` naming the axes, contiguous `data`.
///
/// One preprocessed image is `[C, H, W]` (NCHW) or `[H, W, C]` (NHWC); [`Tensor::stack`]
/// makes `[N, ...]` batches. Cloning is cheap: the storage is shared (a cache hit hands out
/// the cached tensor without copying it).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    layout: Layout,
    data: std::sync::Arc<TensorData>,
}

impl Tensor {
    /// Builds a tensor, checking that `shape` matches the element count.
    ///
    /// # Errors
    /// `InvalidInput` on a shape/length mismatch.
    pub fn new(shape: Vec<usize>, layout: Layout, data: TensorData) -> Result<Tensor> {
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| Error::invalid("tensor shape overflows"))?;
        if n != data.len() {
            return Err(Error::invalid(format!(
                "tensor shape {shape:?} needs {n} elements, data has {}",
                data.len()
            )));
        }
        Ok(Tensor {
            shape,
            layout,
            data: std::sync::Arc::new(data),
        })
    }

    /// Shape, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Layout the axes follow.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// The typed storage.
    pub fn data(&self) -> &TensorData {
        &self.data
    }

    /// Consumes the tensor, returning its storage (copied if it is shared).
    pub fn into_data(self) -> TensorData {
        std::sync::Arc::try_unwrap(self.data).unwrap_or_else(|shared| (*shared).clone())
    }

    /// Raw little-endian bytes (zero-copy).
    pub fn as_bytes(&self) -> &[u8] {
        self.data.as_bytes()
    }

    /// f32 elements, when the dtype is f32.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &*self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    /// u8 elements, when the dtype is u8.
    pub fn as_u8(&self) -> Option<&[u8]> {
        match &*self.data {
            TensorData::U8(v) => Some(v),
            _ => None,
        }
    }

    /// f16 elements, when the dtype is f16.
    pub fn as_f16(&self) -> Option<&[f16]> {
        match &*self.data {
            TensorData::F16(v) => Some(v),
            _ => None,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Stacks same-shaped tensors into one `[N, ...]` tensor.
    ///
    /// # Errors
    /// `InvalidInput` when the list is empty or shapes, dtypes or layouts differ.
    pub fn stack(items: &[&Tensor]) -> Result<Tensor> {
        let first = items
            .first()
            .ok_or_else(|| Error::invalid("cannot stack an empty list"))?;
        for t in items {
            if t.shape != first.shape || t.dtype() != first.dtype() || t.layout != first.layout {
                return Err(Error::invalid(format!(
                    "cannot stack {:?} {} with {:?} {}",
                    t.shape,
                    t.dtype().name(),
                    first.shape,
                    first.dtype().name()
                )));
            }
        }
        let mut data = TensorData::zeros(first.dtype(), first.len() * items.len());
        let chunk = first.as_bytes().len();
        for (dst, t) in data.as_bytes_mut().chunks_exact_mut(chunk).zip(items) {
            dst.copy_from_slice(t.as_bytes());
        }
        let mut shape = vec![items.len()];
        shape.extend_from_slice(&first.shape);
        Tensor::new(shape, first.layout, data)
    }

    /// Serializes shape, layout, dtype and data (the result cache's payload):
    /// `ndim u8 | layout u8 | dtype u8 | shape u64 x ndim | data` (little-endian).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.bytes_header();
        out.extend_from_slice(self.as_bytes());
        out
    }

    /// The part of [`to_bytes`](Self::to_bytes) before the element bytes (rank, layout,
    /// dtype, shape): a writer can store it and [`as_bytes`](Self::as_bytes) without
    /// joining them.
    pub fn bytes_header(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(3 + 8 * self.shape.len());
        out.push(self.shape.len() as u8);
        out.push(match self.layout {
            Layout::Nchw => 0,
            Layout::Nhwc => 1,
        });
        out.push(match self.dtype() {
            DType::U8 => 0,
            DType::F16 => 1,
            DType::F32 => 2,
        });
        for d in &self.shape {
            out.extend_from_slice(&(*d as u64).to_le_bytes());
        }
        out
    }

    /// Parses [`Tensor::to_bytes`]' format.
    ///
    /// # Errors
    /// `InvalidInput` when the bytes are malformed.
    pub fn from_bytes(b: &[u8]) -> Result<Tensor> {
        let bad = || Error::invalid("malformed tensor bytes");
        let (&ndim, rest) = b.split_first().ok_or_else(bad)?;
        let (&layout, rest) = rest.split_first().ok_or_else(bad)?;
        let (&dtype, rest) = rest.split_first().ok_or_else(bad)?;
        let ndim = ndim as usize;
        if rest.len() < 8 * ndim || ndim == 0 {
            return Err(bad());
        }
        let shape: Vec<usize> = rest[..8 * ndim]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as usize)
            .collect();
        let data = &rest[8 * ndim..];
        let layout = match layout {
            0 => Layout::Nchw,
            1 => Layout::Nhwc,
            _ => return Err(bad()),
        };
        let dtype = match dtype {
            0 => DType::U8,
            1 => DType::F16,
            2 => DType::F32,
            _ => return Err(bad()),
        };
        if data.len() % dtype.size() != 0 {
            return Err(bad());
        }
        let mut td = TensorData::zeros(dtype, data.len() / dtype.size());
        td.as_bytes_mut().copy_from_slice(data);
        Tensor::new(shape, layout, td)
    }

    /// Writes the tensor as a NumPy `.npy` (format 1.0, little-endian, C order) and flushes
    /// `w`, so a buffered writer's last bytes are written (and their errors seen) here.
    ///
    /// # Errors
    /// I/O errors from `w`, including the flush's (a full disk, `/dev/full`).
    pub fn write_npy(&self, mut w: impl Write) -> Result<()> {
        let descr = match self.dtype() {
            DType::U8 => "|u1",
            DType::F16 => "<f2",
            DType::F32 => "<f4",
        };
        let shape = match self.shape.len() {
            1 => format!("({},)", self.shape[0]),
            _ => format!(
                "({})",
                self.shape
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        // magic (6) + version (2) + header length (2) + header + '\n', padded to 64 bytes
        let total = 10 + header.len() + 1;
        header.push_str(&" ".repeat((64 - total % 64) % 64));
        header.push('\n');
        w.write_all(b"\x93NUMPY\x01\x00")?;
        let len = u16::try_from(header.len())
            .map_err(|_| Error::invalid("npy header too long"))?
            .to_le_bytes();
        w.write_all(&len)?;
        w.write_all(header.as_bytes())?;
        w.write_all(self.as_bytes())?;
        w.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts 10 bytes, then fails like a full disk.
    struct Full(usize);

    impl Write for Full {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.0 >= 10 {
                return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
            }
            let n = b.len().min(10 - self.0);
            self.0 += n;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_buffered_write_onto_a_full_disk_is_an_error() {
        // Small enough to sit in the BufWriter's buffer until the flush: without the flush
        // in write_npy the error would be dropped with the writer.
        let t = Tensor::new(vec![4], Layout::Nchw, TensorData::U8(vec![1, 2, 3, 4])).unwrap();
        let e = t.write_npy(std::io::BufWriter::new(Full(0))).unwrap_err();
        assert!(matches!(e.kind(), crate::ErrorKind::Io(_)), "{e:?}");
    }

    #[test]
    fn npy_header_is_aligned() {
        let t = Tensor::new(
            vec![3, 2, 2],
            Layout::Nchw,
            TensorData::F32((0..12).map(|i| i as f32).collect()),
        )
        .unwrap();
        let mut buf = Vec::new();
        t.write_npy(&mut buf).unwrap();
        assert_eq!(&buf[..6], b"\x93NUMPY");
        let hl = u16::from_le_bytes([buf[8], buf[9]]) as usize;
        assert_eq!((10 + hl) % 64, 0);
        let header = std::str::from_utf8(&buf[10..10 + hl]).unwrap();
        assert!(header.contains("'shape': (3, 2, 2)"), "{header}");
        assert_eq!(buf.len(), 10 + hl + 48);
    }

    #[test]
    fn bytes_round_trip() {
        let t = Tensor::new(
            vec![2, 3],
            Layout::Nchw,
            TensorData::F16((0..6).map(|i| f16::from_f32(i as f32 * 0.5)).collect()),
        )
        .unwrap();
        let b = t.to_bytes();
        assert_eq!(Tensor::from_bytes(&b).unwrap(), t);
        assert!(Tensor::from_bytes(&b[..b.len() - 1]).is_err());
        assert!(Tensor::from_bytes(&[]).is_err());
    }

    #[test]
    fn stack_checks_shapes() {
        let a = Tensor::new(vec![2], Layout::Nhwc, TensorData::U8(vec![1, 2])).unwrap();
        let b = Tensor::new(vec![2], Layout::Nhwc, TensorData::U8(vec![3, 4])).unwrap();
        let s = Tensor::stack(&[&a, &b]).unwrap();
        assert_eq!(s.shape(), &[2, 2]);
        assert_eq!(s.as_u8().unwrap(), &[1, 2, 3, 4]);
        let c = Tensor::new(vec![1], Layout::Nhwc, TensorData::U8(vec![3])).unwrap();
        assert!(Tensor::stack(&[&a, &c]).is_err());
        assert!(Tensor::new(vec![3], Layout::Nhwc, TensorData::U8(vec![1])).is_err());
    }
}
