//! The JavaScript boundary (wasm32 only): wasm-bindgen exports, option parsing, abort signals,
//! progress callbacks and errors as `EbmError` objects. Nothing here touches the DOM, so the
//! runtime works in a Web Worker. The public, documented API is the ES module wrapper in
//! `js/`, which adds URL loading with progress, a worker client and crash recovery.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Float32Array, Function, Object, Promise, Reflect, Uint8ClampedArray};
use shared::file::Model;
use shared::generate::Overrides;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, future_to_promise};
use web_sys::AbortSignal;

use crate::backend::{Backend, Preference};
use crate::error::RuntimeError;
use crate::job::{self, Host, Images, MalaOverrides, Progress, Request, Task};
use crate::model_info;

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Records panic messages so the wrapper can report them after a trap (a panic aborts the
/// instance; the wrapper then starts a fresh one).
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        LAST_PANIC.set(Some(info.to_string()));
    }));
}

/// The message of the panic that aborted this instance, if any.
#[wasm_bindgen(js_name = lastPanic)]
pub fn last_panic() -> Option<String> {
    LAST_PANIC.with_borrow(Clone::clone)
}

/// An `Error` named `EbmError` with a stable `code`.
fn js_error(error: &RuntimeError) -> JsValue {
    let js = js_sys::Error::new(&error.to_string());
    js.set_name("EbmError");
    let _ = Reflect::set(&js, &"code".into(), &error.code().into());
    js.into()
}

fn option_error(name: &str, why: impl Into<String>) -> RuntimeError {
    RuntimeError::Option { name: name.into(), why: why.into() }
}

/// Reads `options[name]`: `None` when absent, undefined or null.
fn field(options: &JsValue, name: &str) -> Result<Option<JsValue>, RuntimeError> {
    if options.is_undefined() || options.is_null() {
        return Ok(None);
    }
    if !options.is_object() {
        return Err(option_error("options", "must be an object"));
    }
    let value = Reflect::get(options, &name.into()).map_err(|_| option_error(name, "cannot be read"))?;
    Ok((!value.is_undefined() && !value.is_null()).then_some(value))
}

fn number(options: &JsValue, name: &str) -> Result<Option<f64>, RuntimeError> {
    match field(options, name)? {
        None => Ok(None),
        Some(value) => match value.as_f64() {
            Some(v) if v.is_finite() => Ok(Some(v)),
            _ => Err(option_error(name, format!("must be a finite number, got {}", describe(&value)))),
        },
    }
}

/// A non-negative integer no larger than `max`.
fn integer(options: &JsValue, name: &str, max: f64) -> Result<Option<u64>, RuntimeError> {
    match number(options, name)? {
        None => Ok(None),
        Some(v) if v.fract() == 0.0 && (0.0..=max).contains(&v) => Ok(Some(v as u64)),
        Some(v) => Err(option_error(name, format!("must be an integer from 0 to {max}, got {v}"))),
    }
}

fn count(options: &JsValue, name: &str, default: usize) -> Result<usize, RuntimeError> {
    Ok(integer(options, name, job::MAX_IMAGES as f64 * 64.0)?.map_or(default, |v| v as usize))
}

fn flag(options: &JsValue, name: &str) -> Result<bool, RuntimeError> {
    match field(options, name)? {
        None => Ok(false),
        Some(value) => value.as_bool().ok_or_else(|| option_error(name, format!("must be true or false, got {}", describe(&value)))),
    }
}

fn floats(options: &JsValue, name: &str) -> Result<Vec<f32>, RuntimeError> {
    let value = field(options, name)?.ok_or_else(|| option_error(name, "is required"))?;
    if !(value.is_instance_of::<Float32Array>() || Array::is_array(&value) || js_sys::ArrayBuffer::is_view(&value)) {
        return Err(option_error(name, format!("must be a typed array or an array of numbers, got {}", describe(&value))));
    }
    Ok(Float32Array::new(&value).to_vec())
}

fn describe(value: &JsValue) -> String {
    value.as_string().map(|s| format!("\"{s}\"")).unwrap_or_else(|| format!("{:?}", value))
}

/// `width` and `height` together ask for a canvas other than the training size.
fn canvas(options: &JsValue) -> Result<Option<[usize; 2]>, RuntimeError> {
    let side = |name| integer(options, name, 16_384.0).map(|v| v.map(|v| v as usize));
    match (side("height")?, side("width")?) {
        (None, None) => Ok(None),
        (Some(height), Some(width)) => Ok(Some([height, width])),
        _ => Err(option_error("width", "width and height go together")),
    }
}

/// Parses a request; `task` is `"sample"`, `"cascade"`, `"interpolate"` or `"inpaint"`.
fn parse_request(task: &str, options: &JsValue) -> Result<Request, RuntimeError> {
    let task = match task {
        "sample" => Task::Synthesis { count: count(options, "count", 16)?, size: canvas(options)? },
        "cascade" => Task::Cascade { count: count(options, "count", 16)? },
        "interpolate" => Task::Interpolation { pairs: count(options, "pairs", 1)?, points: count(options, "points", 8)? },
        "inpaint" => {
            let images = floats(options, "image")?;
            let missing = floats(options, "mask")?;
            let start_from_image = flag(options, "startFromImage")?;
            Task::Inpainting { count: count(options, "count", 1)?, images, missing, size: canvas(options)?, start_from_image }
        }
        other => return Err(option_error("task", format!("\"{other}\" is not one of sample, cascade, interpolate, inpaint"))),
    };
    let overrides = Overrides {
        steps: integer(options, "steps", 100_000.0)?.map(|v| v as usize),
        step_size: number(options, "stepSize")?,
        noise: number(options, "noise")?,
        noise_free: flag(options, "noiseFree")?,
    };
    // Bounds beyond `integer`'s are checked against the model's settings (`check_mala`).
    let mala = MalaOverrides {
        steps: integer(options, "malaSteps", 1e9)?.map(|v| v as usize),
        step_size: number(options, "malaStepSize")?,
        temperature: number(options, "temperature")?,
    };
    Ok(Request {
        task,
        seed: integer(options, "seed", 9_007_199_254_740_991.0)?.unwrap_or(1),
        overrides,
        mala,
        frame_every: integer(options, "frameEvery", 100_000.0)?.map(|v| v as usize),
    })
}

/// A JavaScript object `{width, height, channels, count, rgba, values, range, acceptanceRate}`
/// (`acceptanceRate`: MEG models after MALA steps, else `null`).
fn images_object(images: &Images) -> JsValue {
    let [count, channels, height, width] = images.shape;
    let object = Object::new();
    let set = |key: &str, value: JsValue| {
        let _ = Reflect::set(&object, &key.into(), &value);
    };
    set("count", count.into());
    set("channels", channels.into());
    set("height", height.into());
    set("width", width.into());
    set("rgba", Uint8ClampedArray::from(images.rgba.as_slice()).into());
    set("values", Float32Array::from(images.values.as_slice()).into());
    set("range", Array::of2(&images.range[0].into(), &images.range[1].into()).into());
    set("acceptanceRate", images.acceptance_rate.map_or(JsValue::NULL, JsValue::from));
    object.into()
}

/// Sleeps for a macrotask so messages and abort events get through.
async fn next_macrotask() {
    let promise = Promise::new(&mut |resolve, _reject| {
        let global = js_sys::global();
        match Reflect::get(&global, &"setTimeout".into()).ok().and_then(|f| f.dyn_into::<Function>().ok()) {
            Some(set_timeout) => {
                let _ = set_timeout.call2(&global, &resolve, &0.into());
            }
            None => {
                let _ = resolve.call0(&JsValue::NULL);
            }
        }
    });
    let _ = JsFuture::from(promise).await;
}

struct BrowserHost {
    on_progress: Option<Function>,
    signal: Option<AbortSignal>,
}

impl Host for BrowserHost {
    fn cancelled(&self) -> bool {
        self.signal.as_ref().is_some_and(AbortSignal::aborted)
    }

    fn wants_progress(&self) -> bool {
        self.on_progress.is_some()
    }

    fn progress(&mut self, progress: &Progress<'_>) -> Result<(), RuntimeError> {
        let Some(callback) = &self.on_progress else { return Ok(()) };
        let event = Object::new();
        let _ = Reflect::set(&event, &"step".into(), &progress.step.into());
        let _ = Reflect::set(&event, &"total".into(), &progress.total.into());
        let _ = Reflect::set(&event, &"logDensity".into(), &progress.log_density.into());
        if let Some(rate) = progress.acceptance_rate {
            let _ = Reflect::set(&event, &"acceptanceRate".into(), &rate.into());
        }
        if let Some(frame) = progress.frame {
            let _ = Reflect::set(&event, &"images".into(), &images_object(frame));
        }
        callback
            .call1(&JsValue::NULL, &event)
            .map(drop)
            .map_err(|e| RuntimeError::Execution(format!("the progress callback threw {}", describe(&e))))
    }

    async fn yield_now(&mut self) {
        next_macrotask().await;
    }

    fn now_ms(&self) -> f64 {
        js_sys::Date::now()
    }
}

/// A compute device chosen for sampling.
#[wasm_bindgen]
pub struct Runtime {
    backend: Backend,
}

/// Sets up a runtime on `device` (`"auto"` (default), `"webgpu"` or `"cpu"`).
#[wasm_bindgen(js_name = createRuntime)]
pub async fn create_runtime(device: Option<String>) -> Result<Runtime, JsValue> {
    let preference: Preference = device.as_deref().unwrap_or("auto").parse().map_err(|e| js_error(&e))?;
    let backend = crate::backend::select(preference).await.map_err(|e| js_error(&e))?;
    Ok(Runtime { backend })
}

#[wasm_bindgen]
impl Runtime {
    /// `{kind, adapter, fallbackReason, maxBufferBytes}` as JSON.
    #[wasm_bindgen(js_name = backendJson)]
    pub fn backend_json(&self) -> String {
        serde_json::to_string(&self.backend.info).unwrap_or_default()
    }

    /// Validates and loads a model file.
    #[wasm_bindgen(js_name = loadModel)]
    pub fn load_model(&self, bytes: &[u8]) -> Result<LoadedModel, JsValue> {
        self.backend.check_alive().map_err(|e| js_error(&e))?;
        let model = Model::from_bytes(bytes, &self.backend.device).map_err(|e| js_error(&RuntimeError::Model(e)))?;
        Ok(LoadedModel { inner: Rc::new((model, self.backend.clone())) })
    }

    /// Panics, to exercise the wrapper's crash recovery in tests (a panic aborts the instance).
    #[wasm_bindgen(js_name = panicForTesting)]
    pub fn panic_for_testing(&self) {
        panic!("deliberate panic for testing");
    }

    /// Panics inside a running promise (after a macrotask), to test that a crash in the middle
    /// of asynchronous work still settles the caller's promise.
    #[wasm_bindgen(js_name = panicLaterForTesting)]
    pub fn panic_later_for_testing(&self) -> Promise {
        future_to_promise(async {
            next_macrotask().await;
            panic!("deliberate asynchronous panic for testing");
        })
    }

    /// Destroys the WebGPU device, to exercise device-loss handling in tests.
    #[wasm_bindgen(js_name = destroyDeviceForTesting)]
    pub fn destroy_device_for_testing(&self) {
        self.backend.destroy_device();
    }
}

/// A loaded model.
#[wasm_bindgen(js_name = Model)]
pub struct LoadedModel {
    inner: Rc<(Model, Backend)>,
}

#[wasm_bindgen(js_class = Model)]
impl LoadedModel {
    /// The manifest and a summary (family, size, defaults) as JSON.
    #[wasm_bindgen(js_name = infoJson)]
    pub fn info_json(&self) -> String {
        model_info(&self.inner.0).to_string()
    }

    /// An extra tensor of the model file (`extra.chains`: a texture model's persistent chains;
    /// `extra.start_colors`: multigrid start colours) as `{shape, values}`, or `null`.
    #[wasm_bindgen(js_name = extraTensor)]
    pub fn extra_tensor(&self, name: &str) -> JsValue {
        let Some(tensor) = self.inner.0.extras.get(name) else { return JsValue::NULL };
        let object = Object::new();
        let shape = Array::new();
        for &side in &tensor.shape {
            shape.push(&(side as f64).into());
        }
        let _ = Reflect::set(&object, &"shape".into(), &shape);
        let _ = Reflect::set(&object, &"values".into(), &Float32Array::from(tensor.values.as_slice()));
        object.into()
    }

    /// Runs `task` (`"sample"`, `"cascade"`, `"interpolate"`, `"inpaint"`) with `options`; resolves to the
    /// images, rejects with an `EbmError`.
    pub fn run(&self, task: &str, options: JsValue, on_progress: Option<Function>, signal: Option<AbortSignal>) -> Promise {
        let inner = self.inner.clone();
        let request = parse_request(task, &options);
        future_to_promise(async move {
            let request = request.map_err(|e| js_error(&e))?;
            let mut host = BrowserHost { on_progress, signal };
            let (model, backend) = &*inner;
            let images = job::run(model, backend, &request, &mut host).await.map_err(|e| js_error(&e))?;
            Ok(images_object(&images))
        })
    }
}
