//! KServe-v2 protocol: readiness gating, model metadata, building the inference body once
//! (binary tensor extension or JSON), and Triton's statistics and model configuration extensions:
//! the one parser ([`ServerStats`], [`ModelConfig`]) and client ([`ModelClient`] blocking,
//! [`ServerStats::fetch`] async) every tool of the workspace reads them with.

use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::config::{Endpoint, InputData};
use crate::error::{Error, Result};
use crate::http::{Template, get};

const SETUP_TIMEOUT: Duration = Duration::from_secs(5);

/// One input from the model metadata.
#[derive(Clone, Debug, Deserialize)]
pub struct TensorMeta {
    /// Input name.
    pub name: String,
    /// KServe datatype (`FP32`, ...).
    pub datatype: String,
    /// Dims, -1 for variable.
    pub shape: Vec<i64>,
}

/// The parts of `GET v2/models/M` we use.
#[derive(Clone, Debug, Deserialize)]
pub struct ModelMeta {
    /// Model name.
    pub name: String,
    /// Inputs.
    pub inputs: Vec<TensorMeta>,
}

fn model_path(ep: &Endpoint, model: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("{}/v2/models/{model}/versions/{v}", ep.base()),
        None => format!("{}/v2/models/{model}", ep.base()),
    }
}

/// Waits (bounded) until `path` answers 200. Connection failures and non-200 answers are retried.
pub async fn wait_ready(ep: &Endpoint, path: &str, bound: Duration) -> Result<()> {
    let start = Instant::now();
    let url = format!("http://{}{path}", ep.authority);
    let mut last;
    let mut answered = false;
    loop {
        match get(&ep.authority, path, SETUP_TIMEOUT).await {
            Ok((200, _)) => return Ok(()),
            Ok((s, body)) => {
                answered = true;
                last = format!("HTTP {s} {}", String::from_utf8_lossy(&body).trim());
            }
            Err(e) => last = e,
        }
        if start.elapsed() >= bound {
            return Err(if answered {
                Error::NotReady {
                    url,
                    waited_s: start.elapsed().as_secs_f64(),
                    last,
                }
            } else {
                Error::Unreachable { url, reason: last }
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Server readiness, then the model's: metadata (unknown model = one clear error) and readiness.
pub async fn prepare(
    ep: &Endpoint,
    model: &str,
    version: Option<&str>,
    bound: Duration,
) -> Result<(ModelMeta, i64)> {
    wait_ready(ep, &format!("{}/v2/health/ready", ep.base()), bound).await?;
    let path = model_path(ep, model, version);
    let (status, body) = get(&ep.authority, &path, SETUP_TIMEOUT)
        .await
        .map_err(|reason| Error::Unreachable {
            url: format!("http://{}{path}", ep.authority),
            reason,
        })?;
    if status != 200 {
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
        return Err(Error::UnknownModel {
            model: model.to_string(),
            url: format!("http://{}", ep.authority),
            status,
            message,
        });
    }
    let meta: ModelMeta = serde_json::from_slice(&body).map_err(|e| Error::Model {
        model: model.to_string(),
        reason: format!("metadata is not KServe-v2 JSON ({e})"),
    })?;
    wait_ready(ep, &format!("{path}/ready"), bound).await?;
    // Triton's config extension says whether the first dim is the batch dim; other servers lack it.
    let max_batch = match get(&ep.authority, &format!("{path}/config"), SETUP_TIMEOUT).await {
        Ok((200, b)) => ModelConfig::parse(&b).map_or(0, |c| i64::from(c.max_batch_size)),
        _ => 0,
    };
    Ok((meta, max_batch))
}

/// Bytes per element of a fixed-size datatype; BYTES elements are handled apart.
pub fn element_size(datatype: &str) -> Option<usize> {
    Some(match datatype {
        "BOOL" | "UINT8" | "INT8" => 1,
        "UINT16" | "INT16" | "FP16" | "BF16" => 2,
        "UINT32" | "INT32" | "FP32" => 4,
        "UINT64" | "INT64" | "FP64" => 8,
        _ => return None,
    })
}

/// Length of each BYTES element generated for random/zero input.
const BYTES_ELEM: usize = 8;

struct Tensor {
    name: String,
    datatype: String,
    shape: Vec<i64>,
    raw: Vec<u8>,
}

fn resolve_shapes(
    meta: &ModelMeta,
    max_batch: i64,
    overrides: &[(String, Vec<i64>)],
    file_len: Option<usize>,
) -> Result<Vec<Vec<i64>>> {
    let model_err = |reason: String| Error::Model {
        model: meta.name.clone(),
        reason,
    };
    for (name, _) in overrides {
        if !meta.inputs.iter().any(|i| &i.name == name) {
            return Err(model_err(format!("--shape names no input {name:?}")));
        }
    }
    let mut shapes = Vec::new();
    for inp in &meta.inputs {
        if let Some((_, dims)) = overrides.iter().find(|(n, _)| n == &inp.name) {
            shapes.push(dims.clone());
            continue;
        }
        let mut dims = inp.shape.clone();
        // The batch dim is 1; a single remaining variable dim of a lone input can come from a file.
        if max_batch > 0 && dims.first() == Some(&-1) {
            dims[0] = 1;
        }
        let variable = dims.iter().filter(|d| **d < 0).count();
        if let (Some(len), 1, 1) = (file_len, variable, meta.inputs.len())
            && let Some(es) = element_size(&inp.datatype)
        {
            let fixed: i64 = dims.iter().filter(|d| **d > 0).product();
            let per = fixed as usize * es;
            if per == 0 || len % per != 0 {
                return Err(model_err(format!(
                    "input file of {len} bytes is not a whole number of {:?} elements",
                    inp.name
                )));
            }
            let n = (len / per) as i64;
            for d in dims.iter_mut().filter(|d| **d < 0) {
                *d = n;
            }
        }
        for d in dims.iter_mut().filter(|d| **d < 0) {
            *d = 1;
        }
        shapes.push(dims);
    }
    Ok(shapes)
}

fn make_tensors(
    meta: &ModelMeta,
    max_batch: i64,
    overrides: &[(String, Vec<i64>)],
    input: &InputData,
    seed: u64,
) -> Result<Vec<Tensor>> {
    let model_err = |reason: String| Error::Model {
        model: meta.name.clone(),
        reason,
    };
    if meta.inputs.is_empty() {
        return Err(model_err("metadata lists no inputs".into()));
    }
    let file = match input {
        InputData::File(p) => Some(std::fs::read(p).map_err(|source| Error::File {
            flag: "--input",
            path: p.clone(),
            source,
        })?),
        _ => None,
    };
    let shapes = resolve_shapes(meta, max_batch, overrides, file.as_ref().map(Vec::len))?;
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let mut tensors = Vec::new();
    let mut offset = 0usize;
    for (inp, shape) in meta.inputs.iter().zip(shapes) {
        let n: usize = shape.iter().product::<i64>() as usize;
        let raw = if inp.datatype == "BYTES" {
            let mut raw = Vec::with_capacity(n * (4 + BYTES_ELEM));
            for _ in 0..n {
                raw.extend_from_slice(&(BYTES_ELEM as u32).to_le_bytes());
                for _ in 0..BYTES_ELEM {
                    raw.push(match input {
                        InputData::Zero => b'0',
                        _ => b'a' + rng.random_range(0..26u8),
                    });
                }
            }
            raw
        } else {
            let es = element_size(&inp.datatype).ok_or_else(|| {
                model_err(format!(
                    "input {:?} has unsupported datatype {}",
                    inp.name, inp.datatype
                ))
            })?;
            match (input, &file) {
                (InputData::File(p), Some(bytes)) => {
                    let need = n * es;
                    let Some(chunk) = bytes.get(offset..offset + need) else {
                        return Err(model_err(format!(
                            "{} holds {} bytes, the inputs need {}",
                            p.display(),
                            bytes.len(),
                            offset + need
                        )));
                    };
                    offset += need;
                    chunk.to_vec()
                }
                (InputData::Zero, _) => vec![0u8; n * es],
                _ => random_elements(&inp.datatype, n, &mut rng),
            }
        };
        tensors.push(Tensor {
            name: inp.name.clone(),
            datatype: inp.datatype.clone(),
            shape,
            raw,
        });
    }
    if let (InputData::File(p), Some(bytes)) = (input, &file)
        && offset != bytes.len()
    {
        return Err(model_err(format!(
            "{} holds {} bytes, the inputs need {offset}",
            p.display(),
            bytes.len()
        )));
    }
    Ok(tensors)
}

fn random_elements(datatype: &str, n: usize, rng: &mut rand_pcg::Pcg64) -> Vec<u8> {
    let mut raw = Vec::with_capacity(n * 8);
    for _ in 0..n {
        match datatype {
            "FP32" => raw.extend_from_slice(&rng.random::<f32>().to_le_bytes()),
            "FP64" => raw.extend_from_slice(&rng.random::<f64>().to_le_bytes()),
            // Halves: a value in [0, 1) built from its bits (exponent below 15 = below 1.0).
            "FP16" => raw.extend_from_slice(&(rng.random_range(0..0x3c00u16)).to_le_bytes()),
            "BF16" => raw.extend_from_slice(&(rng.random_range(0..0x3f80u16)).to_le_bytes()),
            "BOOL" => raw.push(rng.random_range(0..2u8)),
            dt => {
                // Small non-negative integers fit every integer type.
                let v: u8 = rng.random_range(0..100);
                let es = element_size(dt).unwrap_or(1);
                raw.push(v);
                raw.extend(std::iter::repeat_n(0u8, es - 1));
            }
        }
    }
    raw
}

fn json_data(t: &Tensor) -> Value {
    let es = element_size(&t.datatype).unwrap_or(1);
    let chunks = t.raw.chunks_exact(es);
    let vals: Vec<Value> = match t.datatype.as_str() {
        "FP32" => chunks
            .map(|c| json!(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        "FP64" => chunks
            .map(|c| json!(f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))))
            .collect(),
        "BOOL" => chunks.map(|c| json!(c[0] != 0)).collect(),
        "INT8" => chunks.map(|c| json!(c[0] as i8)).collect(),
        "UINT8" => chunks.map(|c| json!(c[0])).collect(),
        "INT16" => chunks
            .map(|c| json!(i16::from_le_bytes([c[0], c[1]])))
            .collect(),
        "UINT16" => chunks
            .map(|c| json!(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        "INT32" => chunks
            .map(|c| json!(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        "UINT32" => chunks
            .map(|c| json!(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        "INT64" => chunks
            .map(|c| json!(i64::from_le_bytes(c.try_into().unwrap_or([0; 8]))))
            .collect(),
        "UINT64" => chunks
            .map(|c| json!(u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))))
            .collect(),
        "BYTES" => {
            let mut out = Vec::new();
            let mut rest = &t.raw[..];
            while rest.len() >= 4 {
                let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let end = (4 + len).min(rest.len());
                out.push(json!(String::from_utf8_lossy(&rest[4..end])));
                rest = &rest[end..];
            }
            out
        }
        // FP16/BF16 have no JSON number form the server would accept bit-exactly; send zeros.
        _ => t.raw.chunks_exact(es).map(|_| json!(0.0)).collect(),
    };
    Value::Array(vals)
}

/// Builds the inference request template once.
#[allow(clippy::too_many_arguments)]
pub fn infer_template(
    ep: &Endpoint,
    model: &str,
    version: Option<&str>,
    meta: &ModelMeta,
    max_batch: i64,
    overrides: &[(String, Vec<i64>)],
    input: &InputData,
    binary: bool,
    seed: u64,
    extra: &[(String, String)],
) -> Result<Template> {
    let tensors = make_tensors(meta, max_batch, overrides, input, seed)?;
    let path = format!("{}/infer", model_path(ep, model, version));
    let mut headers: Vec<(String, String)> = Vec::new();
    let body = if binary {
        let inputs: Vec<Value> = tensors
            .iter()
            .map(|t| {
                json!({"name": t.name, "shape": t.shape, "datatype": t.datatype,
                       "parameters": {"binary_data_size": t.raw.len()}})
            })
            .collect();
        let header = serde_json::to_vec(
            &json!({"inputs": inputs, "parameters": {"binary_data_output": true}}),
        )
        .unwrap_or_default();
        let mut body =
            Vec::with_capacity(header.len() + tensors.iter().map(|t| t.raw.len()).sum::<usize>());
        body.extend_from_slice(&header);
        for t in &tensors {
            body.extend_from_slice(&t.raw);
        }
        headers.push(("Content-Type".into(), "application/octet-stream".into()));
        headers.push((
            "Inference-Header-Content-Length".into(),
            header.len().to_string(),
        ));
        body
    } else {
        let inputs: Vec<Value> = tensors
            .iter()
            .map(|t| json!({"name": t.name, "shape": t.shape, "datatype": t.datatype, "data": json_data(t)}))
            .collect();
        headers.push(("Content-Type".into(), "application/json".into()));
        serde_json::to_vec(&json!({ "inputs": inputs })).unwrap_or_default()
    };
    headers.extend_from_slice(extra);
    Ok(Template::new(
        Method::POST,
        &ep.authority,
        &path,
        Bytes::from(body),
        &headers,
    ))
}

/// Why a statistics or config answer could not be read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body is not JSON at all.
    #[error("not JSON ({0})")]
    NotJson(String),
    /// A field the answer must have is absent or of the wrong kind.
    #[error("no {0}")]
    Missing(&'static str),
}

/// A count or nanosecond total: a JSON number, or a string, which protobuf's JSON mapping (and so
/// some Triton versions) writes for 64-bit integers. Absent or unreadable counts as 0.
fn as_u64(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// Cumulative server-side counters of one model (Triton's statistics extension,
/// `GET v2/models/M/stats`), summed over every version listed. Times are nanoseconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerStats {
    /// Successful inferences.
    pub success: u64,
    /// Their total time inside the server.
    pub success_ns: u64,
    /// Failed inferences.
    pub fail: u64,
    /// Total queue time.
    pub queue_ns: u64,
    /// Total compute (infer) time, per request.
    pub compute_infer_ns: u64,
    /// Model executions (batches).
    pub executions: u64,
    /// `(batch_size, executions, compute_input + compute_infer + compute_output ns)`, by size.
    pub batches: Vec<(u32, u64, u64)>,
}

impl ServerStats {
    /// Parses a `GET v2/models/M/stats` body. Counts may be numbers or strings; absent counters
    /// are 0; an answer without a `model_stats` array is an error.
    pub fn parse(body: &[u8]) -> std::result::Result<ServerStats, BodyError> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| BodyError::NotJson(e.to_string()))?;
        let models = v
            .get("model_stats")
            .and_then(Value::as_array)
            .ok_or(BodyError::Missing("model_stats array"))?;
        let mut s = ServerStats::default();
        for m in models {
            let inf = m.get("inference_stats");
            let f = |k: &str, f: &str| as_u64(inf.and_then(|i| i.get(k)).and_then(|x| x.get(f)));
            s.success += f("success", "count");
            s.success_ns += f("success", "ns");
            s.fail += f("fail", "count");
            s.queue_ns += f("queue", "ns");
            s.compute_infer_ns += f("compute_infer", "ns");
            s.executions += as_u64(m.get("execution_count"));
            for b in m
                .get("batch_stats")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let size = as_u64(b.get("batch_size")) as u32;
                if size == 0 {
                    return Err(BodyError::Missing("batch_size in a batch_stats entry"));
                }
                let count = as_u64(b.get("compute_infer").and_then(|x| x.get("count")));
                let ns: u64 = ["compute_input", "compute_infer", "compute_output"]
                    .iter()
                    .map(|k| as_u64(b.get(*k).and_then(|x| x.get("ns"))))
                    .sum();
                match s.batches.iter_mut().find(|e| e.0 == size) {
                    Some(e) => {
                        e.1 += count;
                        e.2 += ns;
                    }
                    None => s.batches.push((size, count, ns)),
                }
            }
        }
        s.batches.sort_by_key(|b| b.0);
        Ok(s)
    }

    /// `self - before`, per counter and per batch size (sizes that did not run are left out).
    pub fn since(&self, before: &ServerStats) -> ServerStats {
        let batches = self
            .batches
            .iter()
            .map(|&(s, c, ns)| {
                let (c0, ns0) = before
                    .batches
                    .iter()
                    .find(|b| b.0 == s)
                    .map_or((0, 0), |b| (b.1, b.2));
                (s, c.saturating_sub(c0), ns.saturating_sub(ns0))
            })
            .filter(|b| b.1 > 0)
            .collect();
        ServerStats {
            success: self.success.saturating_sub(before.success),
            success_ns: self.success_ns.saturating_sub(before.success_ns),
            fail: self.fail.saturating_sub(before.fail),
            queue_ns: self.queue_ns.saturating_sub(before.queue_ns),
            compute_infer_ns: self
                .compute_infer_ns
                .saturating_sub(before.compute_infer_ns),
            executions: self.executions.saturating_sub(before.executions),
            batches,
        }
    }

    /// Total batch time (input + infer + output) over all batch sizes.
    pub fn batch_compute_ns(&self) -> u64 {
        self.batches.iter().map(|b| b.2).sum()
    }

    /// Fetches the current counters; `None` when the server has no statistics extension.
    pub async fn fetch(ep: &Endpoint, model: &str, version: Option<&str>) -> Option<ServerStats> {
        let path = format!("{}/stats", model_path(ep, model, version));
        match get(&ep.authority, &path, Duration::from_secs(2)).await {
            Ok((200, b)) => ServerStats::parse(&b).ok(),
            _ => None,
        }
    }

    /// [`fetch`](Self::fetch) once every answered request has reached the counters: Triton records
    /// a request's statistics just after it sends the answer, so a read right after the last
    /// response can miss it. Polls until `success + fail >= answered` or [`SETTLE_BOUND`] has
    /// passed (a server behind a load balancer may never count them all) and returns the last read.
    pub async fn fetch_settled(
        ep: &Endpoint,
        model: &str,
        version: Option<&str>,
        answered: u64,
    ) -> Option<ServerStats> {
        let deadline = Instant::now() + SETTLE_BOUND;
        loop {
            let s = ServerStats::fetch(ep, model, version).await;
            match &s {
                Some(st) if st.success + st.fail < answered && Instant::now() < deadline => {}
                _ => return s,
            }
            tokio::time::sleep(SETTLE_POLL).await;
        }
    }
}

/// How long [`ServerStats::fetch_settled`] waits for the counters to catch up.
pub const SETTLE_BOUND: Duration = Duration::from_secs(3);
const SETTLE_POLL: Duration = Duration::from_millis(20);

/// What `GET v2/models/M/config` says about scheduling (Triton's model configuration extension).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelConfig {
    /// `max_batch_size` (0 = the model does not batch).
    pub max_batch_size: u32,
    /// `dynamic_batching.max_queue_delay_microseconds`, in seconds; `None` without dynamic batching.
    pub max_queue_delay: Option<f64>,
    /// Sum of `instance_group[].count` (1 when absent).
    pub instances: u32,
}

impl ModelConfig {
    /// Parses a `GET v2/models/M/config` body (numbers or strings; snake or camel case keys).
    pub fn parse(body: &[u8]) -> std::result::Result<ModelConfig, BodyError> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| BodyError::NotJson(e.to_string()))?;
        if !v.is_object() {
            return Err(BodyError::Missing("configuration object"));
        }
        let max_queue_delay = v.get("dynamic_batching").map(|d| {
            as_u64(
                d.get("max_queue_delay_microseconds")
                    .or_else(|| d.get("maxQueueDelayMicroseconds")),
            ) as f64
                * 1e-6
        });
        let instances = v
            .get("instance_group")
            .and_then(Value::as_array)
            .map(|g| g.iter().map(|i| as_u64(i.get("count")).max(1)).sum::<u64>())
            .filter(|&n| n > 0)
            .unwrap_or(1);
        Ok(ModelConfig {
            max_batch_size: as_u64(v.get("max_batch_size").or_else(|| v.get("maxBatchSize")))
                as u32,
            max_queue_delay,
            instances: instances as u32,
        })
    }

    /// The simulator's batch limit: 1 without dynamic batching (Triton then never merges requests).
    pub fn sim_max_batch(&self) -> u32 {
        if self.max_queue_delay.is_some() {
            self.max_batch_size.max(1)
        } else {
            1
        }
    }
}

/// A blocking client for one model's metadata, configuration and statistics, for tools that are
/// not async (calibration, fidelity). It runs [`get`] on its own single-threaded runtime, so it
/// must not be called from inside another async runtime.
#[derive(Debug)]
pub struct ModelClient {
    ep: Endpoint,
    url: String,
    model: String,
    rt: tokio::runtime::Runtime,
}

impl ModelClient {
    /// Checks `url` (`http://host:port`) and the model name.
    pub fn new(url: &str, model: &str) -> Result<ModelClient> {
        let url = url.trim_end_matches('/').to_string();
        let ep = Endpoint::parse(&url)?;
        if model.is_empty() || model.contains('/') {
            return Err(Error::Usage(format!(
                "--model {model:?}: expected a model name"
            )));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Usage(format!("cannot start an HTTP runtime: {e}")))?;
        Ok(ModelClient {
            ep,
            url,
            model: model.to_string(),
            rt,
        })
    }

    /// GETs `path` (under the base URL) and returns a 200 answer's body.
    fn get(&self, path: &str) -> Result<Bytes> {
        let full = format!("{}{path}", self.ep.base());
        let (status, body) = self
            .rt
            .block_on(get(&self.ep.authority, &full, SETUP_TIMEOUT))
            .map_err(|reason| Error::Unreachable {
                url: self.url.clone(),
                reason,
            })?;
        match status {
            200 => Ok(body),
            400 | 404 if path.starts_with("/v2/models/") => Err(Error::UnknownModel {
                model: self.model.clone(),
                url: self.url.clone(),
                status,
                message: String::from_utf8_lossy(&body).trim().to_string(),
            }),
            _ => Err(Error::Model {
                model: self.model.clone(),
                reason: format!("GET {}{path}: HTTP {status}", self.url),
            }),
        }
    }

    fn bad_body(&self, what: &str, e: BodyError) -> Error {
        Error::Model {
            model: self.model.clone(),
            reason: format!("{what} answer from {}: {e}", self.url),
        }
    }

    /// `GET /v2`: the server's name and version, e.g. `triton 2.51.0`.
    pub fn server_version(&self) -> Result<String> {
        let body = self.get("/v2")?;
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| self.bad_body("/v2", BodyError::NotJson(e.to_string())))?;
        Ok(format!(
            "{} {}",
            v.get("name").and_then(Value::as_str).unwrap_or("server"),
            v.get("version").and_then(Value::as_str).unwrap_or("?")
        ))
    }

    /// `GET /v2/models/M/config`.
    pub fn config(&self) -> Result<ModelConfig> {
        let body = self.get(&format!("/v2/models/{}/config", self.model))?;
        ModelConfig::parse(&body).map_err(|e| self.bad_body("config", e))
    }

    /// `GET /v2/models/M/stats`.
    pub fn stats(&self) -> Result<ServerStats> {
        let body = self.get(&format!("/v2/models/{}/stats", self.model))?;
        ServerStats::parse(&body).map_err(|e| self.bad_body("statistics", e))
    }

    /// [`stats`](Self::stats) once they count at least `answered` more requests
    /// (`success + fail`) than `before`, or after [`SETTLE_BOUND`]: see
    /// [`ServerStats::fetch_settled`] for why.
    pub fn stats_settled(&self, before: &ServerStats, answered: u64) -> Result<ServerStats> {
        let deadline = Instant::now() + SETTLE_BOUND;
        loop {
            let s = self.stats()?;
            let d = s.since(before);
            if d.success + d.fail >= answered || Instant::now() >= deadline {
                return Ok(s);
            }
            std::thread::sleep(SETTLE_POLL);
        }
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The model name.
    pub fn model(&self) -> &str {
        &self.model
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ModelMeta {
        serde_json::from_str(
            r#"{"name":"image","versions":["1"],"platform":"python","inputs":[
                {"name":"images","datatype":"FP32","shape":[-1,3,224,224]}],
                "outputs":[{"name":"logits","datatype":"FP32","shape":[-1,1000]}]}"#,
        )
        .unwrap()
    }

    fn ep() -> Endpoint {
        Endpoint::parse("http://127.0.0.1:8000").unwrap()
    }

    #[test]
    fn binary_body_is_header_then_tensor_with_the_length_header() {
        let t = infer_template(
            &ep(),
            "image",
            None,
            &meta(),
            16,
            &[],
            &InputData::Zero,
            true,
            1,
            &[],
        )
        .unwrap();
        let hlen: usize = t.headers["inference-header-content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(t.body.len(), hlen + 3 * 224 * 224 * 4);
        let header: Value = serde_json::from_slice(&t.body[..hlen]).unwrap();
        assert_eq!(header["inputs"][0]["shape"], json!([1, 3, 224, 224]));
        assert_eq!(
            header["inputs"][0]["parameters"]["binary_data_size"],
            json!(602_112)
        );
        assert_eq!(t.uri.path(), "/v2/models/image/infer");
    }

    #[test]
    fn json_body_carries_the_same_values() {
        let m: ModelMeta = serde_json::from_str(
            r#"{"name":"identity","inputs":[{"name":"INPUT0","datatype":"FP32","shape":[-1,-1]}]}"#,
        )
        .unwrap();
        let t = infer_template(
            &ep(),
            "identity",
            None,
            &m,
            64,
            &[("INPUT0".into(), vec![1, 4])],
            &InputData::Random,
            false,
            7,
            &[],
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        let data = v["inputs"][0]["data"].as_array().unwrap();
        assert_eq!(data.len(), 4);
        assert!(
            data.iter()
                .all(|x| (0.0..1.0).contains(&x.as_f64().unwrap()))
        );
        assert_eq!(v["inputs"][0]["shape"], json!([1, 4]));
    }

    #[test]
    fn file_input_sizes_the_variable_dim() {
        let m: ModelMeta = serde_json::from_str(
            r#"{"name":"faulty","inputs":[{"name":"INPUT0","datatype":"FP32","shape":[-1]}]}"#,
        )
        .unwrap();
        let dir = std::env::temp_dir().join(format!("kis-lg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("in.bin");
        std::fs::write(&f, [(-1.0f32).to_le_bytes(), 2.0f32.to_le_bytes()].concat()).unwrap();
        let t = make_tensors(&m, 0, &[], &InputData::File(f.clone()), 1).unwrap();
        assert_eq!(t[0].shape, vec![2]);
        std::fs::write(&f, [1u8, 2, 3]).unwrap();
        assert!(make_tensors(&m, 0, &[], &InputData::File(f), 1).is_err());
    }

    #[test]
    fn stats_parse_sums_versions() {
        let body = br#"{"model_stats":[{"name":"m","version":"1","execution_count":3,
            "inference_stats":{"success":{"count":5,"ns":100},"queue":{"count":5,"ns":40},
            "compute_infer":{"count":5,"ns":60}}},
            {"name":"m","version":"2","execution_count":1,
            "inference_stats":{"success":{"count":1,"ns":10},"fail":{"count":2,"ns":1}}}]}"#;
        let s = ServerStats::parse(body).unwrap();
        assert_eq!(
            s,
            ServerStats {
                success: 6,
                success_ns: 110,
                fail: 2,
                queue_ns: 40,
                compute_infer_ns: 60,
                executions: 4,
                batches: vec![],
            }
        );
    }

    fn stats_body(success: u64, n2: u64, quoted: bool) -> Vec<u8> {
        // Protobuf's JSON mapping writes 64-bit integers as strings; Triton writes numbers.
        let q = |x: u64| {
            if quoted {
                format!("\"{x}\"")
            } else {
                x.to_string()
            }
        };
        format!(
            r#"{{"model_stats":[{{"inference_stats":{{"success":{{"count":{},"ns":{}}},
            "queue":{{"count":1,"ns":{}}},"fail":{{"count":0,"ns":0}}}},
            "batch_stats":[{{"batch_size":{},"compute_input":{{"count":{},"ns":{}}},
              "compute_infer":{{"count":{},"ns":{}}},"compute_output":{{"count":{},"ns":{}}}}},
              {{"batch_size":2,"compute_infer":{{"count":{},"ns":{}}}}}]}}]}}"#,
            q(success),
            q(success * 1000),
            q(7),
            q(1),
            q(success),
            q(10),
            q(success),
            q(success * 100),
            q(success),
            q(5),
            q(n2),
            q(n2 * 300),
        )
        .into_bytes()
    }

    #[test]
    fn stats_accept_integers_as_numbers_and_as_strings() {
        for quoted in [false, true] {
            let a = ServerStats::parse(&stats_body(10, 0, quoted)).unwrap();
            let b = ServerStats::parse(&stats_body(30, 5, quoted)).unwrap();
            assert_eq!(a.success, 10, "quoted={quoted}");
            assert_eq!(a.queue_ns, 7);
            assert_eq!(a.batches, vec![(1, 10, 10 + 1000 + 5), (2, 0, 0)]);
            let d = b.since(&a);
            assert_eq!(d.success, 20);
            assert_eq!(d.success_ns, 20_000);
            assert_eq!(d.batches, vec![(1, 20, 2000), (2, 5, 1500)]);
            assert_eq!(d.batch_compute_ns(), 3500);
        }
    }

    #[test]
    fn stats_missing_fields_count_as_zero() {
        let s = ServerStats::parse(br#"{"model_stats":[{"name":"m"}]}"#).unwrap();
        assert_eq!(s, ServerStats::default());
        let s = ServerStats::parse(br#"{"model_stats":[]}"#).unwrap();
        assert_eq!(s, ServerStats::default());
    }

    #[test]
    fn bad_stats_bodies_are_clear_errors() {
        let e = ServerStats::parse(b"<html>502</html>").unwrap_err();
        assert!(matches!(e, BodyError::NotJson(_)), "{e}");
        assert!(e.to_string().starts_with("not JSON"), "{e}");
        let e = ServerStats::parse(br#"{"error":"no stats"}"#).unwrap_err();
        assert_eq!(e.to_string(), "no model_stats array");
        let e = ServerStats::parse(br#"{"model_stats":{}}"#).unwrap_err();
        assert_eq!(e, BodyError::Missing("model_stats array"));
        let e = ServerStats::parse(br#"{"model_stats":[{"batch_stats":[{"compute_infer":{}}]}]}"#)
            .unwrap_err();
        assert!(e.to_string().contains("batch_size"), "{e}");
    }

    #[test]
    fn config_parses_numbers_strings_and_defaults() {
        let c = ModelConfig::parse(
            br#"{"max_batch_size":16,"dynamic_batching":{"max_queue_delay_microseconds":"2000"},
                "instance_group":[{"count":2,"kind":"KIND_CPU"},{"count":"1"}]}"#,
        )
        .unwrap();
        assert_eq!(
            c,
            ModelConfig {
                max_batch_size: 16,
                max_queue_delay: Some(0.002),
                instances: 3
            }
        );
        assert_eq!(c.sim_max_batch(), 16);
        let c = ModelConfig::parse(br#"{"max_batch_size":"8"}"#).unwrap();
        assert_eq!(
            c,
            ModelConfig {
                max_batch_size: 8,
                max_queue_delay: None,
                instances: 1
            }
        );
        assert_eq!(c.sim_max_batch(), 1);
        assert!(matches!(
            ModelConfig::parse(b"not json"),
            Err(BodyError::NotJson(_))
        ));
        assert!(ModelConfig::parse(b"[1]").is_err());
    }

    #[test]
    fn client_checks_its_url_and_model() {
        assert!(ModelClient::new("ftp://h:1", "m").is_err());
        assert!(ModelClient::new("http://127.0.0.1:1", "a/b").is_err());
        let c = ModelClient::new("http://127.0.0.1:8000/", "m").unwrap();
        assert_eq!(c.url(), "http://127.0.0.1:8000");
        assert_eq!(c.model(), "m");
    }

    #[test]
    fn client_names_an_unreachable_server() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = ModelClient::new(&format!("http://127.0.0.1:{port}"), "m").unwrap();
        let e = c.stats().unwrap_err().to_string();
        assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
    }
}
