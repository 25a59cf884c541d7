//! KServe-v2 protocol: readiness gating, model metadata, building the inference body once
//! (binary tensor extension or JSON), and the Triton statistics extension.

use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use rand::{RngExt, SeedableRng};
use serde::Deserialize;
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
        Ok((200, b)) => serde_json::from_slice::<Value>(&b)
            .ok()
            .and_then(|v| v.get("max_batch_size").and_then(Value::as_i64))
            .unwrap_or(0),
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

/// Cumulative server-side counters of one model (statistics extension), in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ServerStats {
    /// Successful inferences.
    pub success: u64,
    /// Total queue time.
    pub queue_ns: u64,
    /// Total compute (infer) time.
    pub compute_ns: u64,
    /// Model executions (batches).
    pub executions: u64,
}

impl ServerStats {
    /// Parses `GET v2/models/M/stats`, summing every version listed.
    pub fn parse(body: &[u8]) -> Option<ServerStats> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let mut s = ServerStats::default();
        for m in v.get("model_stats")?.as_array()? {
            let st = m.get("inference_stats")?;
            let f = |k: &str, f: &str| {
                st.get(k)
                    .and_then(|x| x.get(f))
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            };
            s.success += f("success", "count");
            s.queue_ns += f("queue", "ns");
            s.compute_ns += f("compute_infer", "ns");
            s.executions += m
                .get("execution_count")
                .and_then(Value::as_u64)
                .unwrap_or(0);
        }
        Some(s)
    }

    /// Fetches the current counters; `None` when the server has no statistics extension.
    pub async fn fetch(ep: &Endpoint, model: &str, version: Option<&str>) -> Option<ServerStats> {
        let path = format!("{}/stats", model_path(ep, model, version));
        match get(&ep.authority, &path, Duration::from_secs(2)).await {
            Ok((200, b)) => ServerStats::parse(&b),
            _ => None,
        }
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
            "compute_infer":{"count":5,"ns":60}}}]}"#;
        let s = ServerStats::parse(body).unwrap();
        assert_eq!(
            s,
            ServerStats {
                success: 5,
                queue_ns: 40,
                compute_ns: 60,
                executions: 3
            }
        );
    }
}
