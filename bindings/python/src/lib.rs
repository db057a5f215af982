//! `veridoc._veridoc`: the extension module behind the `veridoc` Python package
//! (python/veridoc/). One `Engine` per process (or per Ray actor) holds the rayon pool, the
//! GPU context, the models and the result cache; every call converts its arguments while
//! holding the GIL, then releases it for all the engine's work, so other Python threads run
//! meanwhile and the engine's threads use every core.
//!
//! Errors: a bad spec, profile or setting raises (`SpecError`, ...); a bad item never raises
//! for the whole batch: its report says `verdict == "error"` with the stable code
//! (`veridoc::Error::code`), or its slot in `preprocess`'s error list holds the exception.

use std::path::PathBuf;

use numpy::ndarray::{ArrayD, IxDyn};
use numpy::IntoPyArray;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use veridoc::cache::CacheConfig;
use veridoc::verify::{Profile, VerifyOptions};
use veridoc::{DevicePolicy, ErrorKind, Input, Pipeline, TensorData};

create_exception!(
    veridoc,
    VeridocError,
    PyException,
    "Base of veridoc's exceptions; `code` is veridoc's stable error code."
);
create_exception!(
    veridoc,
    SpecError,
    VeridocError,
    "A pipeline spec, profile or engine setting is invalid (code `invalid_spec`)."
);
create_exception!(
    veridoc,
    InputError,
    VeridocError,
    "An input is unusable: missing, unreadable, corrupt or unsupported."
);
create_exception!(
    veridoc,
    LimitError,
    VeridocError,
    "A size, pixel, time or memory limit was exceeded (`busy` may succeed later)."
);
create_exception!(
    veridoc,
    GpuError,
    VeridocError,
    "The GPU path failed, or the requested GPU is absent."
);
create_exception!(
    veridoc,
    ModelError,
    VeridocError,
    "The face models are missing or malformed."
);
create_exception!(
    veridoc,
    CacheError,
    VeridocError,
    "A result cache entry or directory problem."
);

/// The Python exception for a veridoc error, by its stable code, with `code` and `input`
/// attributes set.
fn exception(py: Python<'_>, e: &veridoc::Error) -> PyErr {
    let msg = e.to_string();
    let err = match e.kind() {
        ErrorKind::InvalidSpec { .. } => SpecError::new_err(msg),
        ErrorKind::Limit(_) => LimitError::new_err(msg),
        ErrorKind::Gpu(_) => GpuError::new_err(msg),
        ErrorKind::Model(_) => ModelError::new_err(msg),
        ErrorKind::Cache(_) => CacheError::new_err(msg),
        ErrorKind::InvalidInput(_)
        | ErrorKind::Decode { .. }
        | ErrorKind::Unsupported(_)
        | ErrorKind::Io(_) => InputError::new_err(msg),
        _ => VeridocError::new_err(msg),
    };
    let v = err.value(py);
    // setting attributes on a fresh exception instance cannot fail in practice; if it did,
    // the exception still carries its message
    let _ = v.setattr("code", e.code());
    let _ = v.setattr("input", e.input());
    err
}

fn spec_error(py: Python<'_>, field: &str, reason: impl Into<String>) -> PyErr {
    exception(
        py,
        &veridoc::Error::new(ErrorKind::InvalidSpec {
            field: field.into(),
            reason: reason.into(),
        }),
    )
}

/// A spec given as a JSON string or as a dict/list (serialized with Python's `json`).
fn json_text(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    if obj.is_instance_of::<PyString>() {
        return obj.extract();
    }
    let json = obj.py().import("json")?;
    json.call_method1("dumps", (obj,))?.extract()
}

/// One input from a path (str or os.PathLike), bytes, or a `(name, bytes)` tuple.
fn input_of(i: usize, obj: &Bound<'_, PyAny>) -> PyResult<Input> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Input::bytes(format!("bytes[{i}]"), b.as_bytes()));
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        if t.len() == 2 {
            let name: String = t.get_item(0)?.extract()?;
            let item = t.get_item(1)?;
            let b = item.cast::<PyBytes>().map_err(|_| {
                spec_error(
                    obj.py(),
                    &format!("inputs[{i}]"),
                    "a (name, data) tuple needs bytes as its data",
                )
            })?;
            return Ok(Input::bytes(name, b.as_bytes()));
        }
    }
    match obj.extract::<PathBuf>() {
        Ok(p) => Ok(Input::path(p)),
        Err(_) => Err(spec_error(
            obj.py(),
            &format!("inputs[{i}]"),
            format!(
                "expected a path, bytes or a (name, bytes) tuple, got {}",
                obj.get_type().name()?
            ),
        )),
    }
}

fn inputs_of(inputs: &Bound<'_, PyAny>) -> PyResult<Vec<Input>> {
    if inputs.is_instance_of::<PyString>() || inputs.is_instance_of::<PyBytes>() {
        return Err(spec_error(
            inputs.py(),
            "inputs",
            "expected a list of inputs, not one input",
        ));
    }
    inputs
        .try_iter()?
        .enumerate()
        .map(|(i, o)| input_of(i, &o?))
        .collect()
}

/// A profile: a built-in name (`passport`), a path to a JSON/TOML file, or a dict.
fn profile_of(py: Python<'_>, profile: &Bound<'_, PyAny>) -> PyResult<Profile> {
    let r = if let Ok(s) = profile.extract::<String>() {
        if Profile::builtin_names().contains(&s.as_str()) {
            Profile::builtin(&s)
        } else {
            Profile::load(s.as_ref())
        }
    } else if let Ok(p) = profile.extract::<PathBuf>() {
        Profile::load(&p)
    } else {
        Profile::from_json(&json_text(profile)?)
    };
    r.map_err(|e| exception(py, &e))
}

/// A verification and preprocessing engine: a thread pool, an optional GPU, the face models
/// and a result cache, built once and reused for every call (it is safe to share between
/// threads).
#[pyclass(frozen, module = "veridoc")]
struct Engine {
    engine: veridoc::Engine,
    /// Whether the face models were registered (verification needs them).
    models: Option<PathBuf>,
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (device = "auto", gpu = None, threads = None, cache_dir = None,
                        cache_bytes = None, ttl_s = None, models = None, memory_cache_bytes = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        device: &str,
        gpu: Option<String>,
        threads: Option<usize>,
        cache_dir: Option<PathBuf>,
        cache_bytes: Option<u64>,
        ttl_s: Option<f64>,
        models: Option<PathBuf>,
        memory_cache_bytes: Option<u64>,
    ) -> PyResult<Self> {
        let policy: DevicePolicy = device.parse().map_err(|e| exception(py, &e))?;
        let gpu = gpu.or_else(|| std::env::var("VERIDOC_GPU").ok());
        let mut b = veridoc::Engine::builder().device_policy(policy);
        if let Some(spec) = &gpu {
            b = b.gpu(veridoc::gpu::GpuSelection::parse(spec).map_err(|e| exception(py, &e))?);
        }
        if let Some(t) = threads {
            if t == 0 {
                return Err(spec_error(py, "threads", "must be at least 1"));
            }
            b = b.cpu_threads(t);
        }
        let mut cfg = CacheConfig::default();
        if let Some(m) = memory_cache_bytes {
            cfg = cfg.memory_bytes(m);
        }
        if let Some(ttl) = ttl_s {
            if !(ttl.is_finite() && ttl > 0.0) {
                return Err(spec_error(
                    py,
                    "ttl_s",
                    "must be a positive number of seconds",
                ));
            }
            cfg = cfg.ttl(std::time::Duration::from_secs_f64(ttl));
        }
        if let Some(n) = cache_bytes {
            cfg = cfg.disk_bytes(n);
        }
        match &cache_dir {
            Some(dir) => b = b.cache_dir(dir).result_cache(cfg.disk(dir.join("results"))),
            None => b = b.no_persist().result_cache(cfg),
        }
        let models = models.or_else(|| std::env::var_os("VERIDOC_MODELS").map(PathBuf::from));
        let (engine, registered) = py
            .detach(|| {
                let engine = b.build()?;
                let registered = match &models {
                    Some(m) => !engine.register_face_models(m).is_empty(),
                    None => false,
                };
                Ok::<_, veridoc::Error>((engine, registered))
            })
            .map_err(|e| exception(py, &e))?;
        Ok(Engine {
            engine,
            models: models.filter(|_| registered),
        })
    }

    /// Verifies each input against `profile`; one report (a dict) per input, in order.
    #[pyo3(signature = (inputs, profile = None))]
    fn verify<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        profile: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let inputs = inputs_of(inputs)?;
        let profile = match profile {
            Some(p) => profile_of(py, p)?,
            None => Profile::passport(),
        };
        if self.models.is_none() {
            return Err(exception(
                py,
                &veridoc::Error::new(ErrorKind::Model(
                    "no face models: pass Engine(models=DIR) or set VERIDOC_MODELS".into(),
                )),
            ));
        }
        let engine = &self.engine;
        let reports = py
            .detach(|| {
                let verifier = engine.verifier(VerifyOptions::new(profile))?;
                let mut out = Vec::with_capacity(inputs.len());
                verifier.verify_each(&inputs, None, |chunk| {
                    out.extend(chunk);
                    std::ops::ControlFlow::Continue(())
                });
                Ok::<_, veridoc::Error>(out)
            })
            .map_err(|e| exception(py, &e))?;
        let list = PyList::empty(py);
        for r in &reports {
            let json = serde_json::to_string(r)
                .map_err(|e| exception(py, &invalid(format!("report JSON: {e}"))))?;
            let d = PyDict::new(py);
            d.set_item("name", &r.name)?;
            d.set_item("verdict", word(serde_json::to_value(r.verdict)))?;
            d.set_item("failed", &r.failed)?;
            d.set_item("faces", r.faces.len())?;
            d.set_item("device", word(serde_json::to_value(r.device)))?;
            d.set_item("cached", r.cached)?;
            d.set_item("error", r.error.as_ref().map(|e| e.code.clone()))?;
            d.set_item("report", json)?;
            list.append(d)?;
        }
        Ok(list)
    }

    /// Preprocesses each input with `pipeline` (a dict or JSON string of veridoc's pipeline
    /// spec, shrink-on-load included: `{"decode": {"shrink": "balanced"}}`); returns
    /// `(batch, errors)`.
    fn preprocess<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
        pipeline: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyList>)> {
        let inputs = inputs_of(inputs)?;
        let spec = json_text(pipeline)?;
        let pipeline: Pipeline =
            serde_json::from_str(&spec).map_err(|e| spec_error(py, "pipeline", e.to_string()))?;
        let n = inputs.len();
        let engine = &self.engine;
        let (batch, errors) = py
            .detach(|| -> veridoc::Result<Stacked> {
                let out = engine.run(&pipeline, &inputs)?;
                stack(pipeline.dtype, out.items)
            })
            .map_err(|e| exception(py, &e))?;
        let list = PyList::empty(py);
        for e in &errors {
            match e {
                Some(e) => list.append(exception(py, e).into_value(py))?,
                None => list.append(py.None())?,
            }
        }
        debug_assert_eq!(errors.len(), n);
        Ok((batch.into_numpy(py)?, list))
    }

    /// Counters since the engine was built: `detector_photos` (photos run through the face
    /// detector; reports served from the cache do not count), and the result cache's
    /// `cache_memory_hits`, `cache_disk_hits` and `cache_misses` (served by neither tier).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("detector_photos", self.engine.detector_photos())?;
        if let Some(c) = self.engine.result_cache() {
            let s = c.stats();
            d.set_item("cache_memory_hits", s.memory.hits)?;
            d.set_item("cache_disk_hits", s.disk.hits)?;
            // a memory miss goes on to the disk tier when there is one
            let misses = if c.disk().is_some() {
                s.disk.misses
            } else {
                s.memory.misses
            };
            d.set_item("cache_misses", misses)?;
        }
        Ok(d)
    }

    /// The rayon pool's thread count.
    #[getter]
    fn threads(&self) -> usize {
        self.engine.cpu_threads()
    }

    /// The GPU adapter in use (a dict), or None.
    #[getter]
    fn gpu<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.engine.gpu_info().map(|g| gpu_dict(py, g)).transpose()
    }

    /// The device policy: `auto`, `cpu` or `gpu`.
    #[getter]
    fn device(&self) -> String {
        word(serde_json::to_value(self.engine.device_policy()))
    }

    fn __repr__(&self) -> String {
        format!(
            "veridoc.Engine(device={:?}, threads={}, gpu={:?})",
            word(serde_json::to_value(self.engine.device_policy())),
            self.engine.cpu_threads(),
            self.engine.gpu_info().map(|g| g.name.clone())
        )
    }
}

/// The serialized word of a unit enum (`accepted`, `cpu`, ...), from `serde_json::to_value`.
fn word(v: serde_json::Result<serde_json::Value>) -> String {
    match v {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

fn gpu_dict<'py>(py: Python<'py>, g: &veridoc::gpu::GpuInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", &g.name)?;
    d.set_item("backend", &g.backend)?;
    d.set_item("device_type", &g.device_type)?;
    d.set_item("driver", &g.driver)?;
    d.set_item("pci_bus_id", &g.pci_bus_id)?;
    d.set_item("is_software", g.is_software)?;
    Ok(d)
}

/// The GPU adapters this process can open, in selection order (`Engine(gpu="1")` picks the
/// second); empty in a CPU-only build.
#[pyfunction]
fn gpu_adapters(py: Python<'_>) -> PyResult<Vec<Bound<'_, PyDict>>> {
    let all = py.detach(veridoc::gpu::adapters);
    all.iter().map(|g| gpu_dict(py, g)).collect()
}

/// One stacked batch: every item's values in one buffer, failed items' rows zero.
enum Batch {
    U8(ArrayD<u8>),
    F16(ArrayD<half::f16>),
    F32(ArrayD<f32>),
}

impl Batch {
    /// Hands the buffer to numpy without copying (the array owns the Rust allocation).
    fn into_numpy(self, py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        Ok(match self {
            Batch::U8(a) => a.into_pyarray(py).into_any(),
            Batch::F16(a) => a.into_pyarray(py).into_any(),
            Batch::F32(a) => a.into_pyarray(py).into_any(),
        })
    }
}

type Stacked = (Batch, Vec<Option<veridoc::Error>>);

/// Stacks the items' tensors into one `[N, ...]` buffer (the one copy: the engine returns a
/// tensor per item); failed items get a zero row and their error.
fn stack(dtype: veridoc::DType, items: Vec<veridoc::Item>) -> veridoc::Result<Stacked> {
    let n = items.len();
    let shape: Vec<usize> = items
        .iter()
        .find_map(|i| i.result.as_ref().ok().map(|t| t.shape().to_vec()))
        .unwrap_or_default();
    let per: usize = if shape.is_empty() {
        0
    } else {
        shape.iter().product()
    };
    let mut full = vec![n];
    full.extend(&shape);
    if shape.is_empty() {
        full.push(0);
    }
    let mut data = TensorData::zeros(dtype, n * per);
    let mut errors = Vec::with_capacity(n);
    for (k, item) in items.into_iter().enumerate() {
        match item.result {
            Ok(t) if t.shape() == shape.as_slice() && t.dtype() == dtype => {
                let w = t.as_bytes().len();
                data.as_bytes_mut()[k * w..(k + 1) * w].copy_from_slice(t.as_bytes());
                errors.push(None);
            }
            Ok(t) => {
                return Err(invalid(format!(
                    "{}: shape {:?} differs from the batch's {:?}; stacking needs a fixed \
                     output size (stretch, fit or fill)",
                    item.name,
                    t.shape(),
                    shape
                )))
            }
            Err(e) => errors.push(Some(e)),
        }
    }
    let dims = IxDyn(&full);
    let bad = |e: numpy::ndarray::ShapeError| invalid(e.to_string());
    let batch = match data {
        TensorData::U8(v) => Batch::U8(ArrayD::from_shape_vec(dims, v).map_err(bad)?),
        TensorData::F16(v) => Batch::F16(ArrayD::from_shape_vec(dims, v).map_err(bad)?),
        TensorData::F32(v) => Batch::F32(ArrayD::from_shape_vec(dims, v).map_err(bad)?),
        other => return Err(invalid(format!("unsupported dtype {:?}", other.dtype()))),
    };
    Ok((batch, errors))
}

/// The extension module.
#[pymodule]
fn _veridoc(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<Engine>()?;
    m.add_function(wrap_pyfunction!(gpu_adapters, m)?)?;
    m.add("VeridocError", py.get_type::<VeridocError>())?;
    m.add("SpecError", py.get_type::<SpecError>())?;
    m.add("InputError", py.get_type::<InputError>())?;
    m.add("LimitError", py.get_type::<LimitError>())?;
    m.add("GpuError", py.get_type::<GpuError>())?;
    m.add("ModelError", py.get_type::<ModelError>())?;
    m.add("CacheError", py.get_type::<CacheError>())?;
    m.add("VERSION", veridoc::VERSION)?;
    m.add("BUILD_ID", veridoc::BUILD_ID)?;
    Ok(())
}

/// An `invalid_input` error (the engine's own constructor is crate-private).
fn invalid(msg: impl Into<String>) -> veridoc::Error {
    veridoc::Error::new(ErrorKind::InvalidInput(msg.into()))
}
