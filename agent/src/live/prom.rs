//! A small Prometheus HTTP API client: instant queries (`/api/v1/query`) answered as vectors or
//! scalars, with a per-request timeout. Blocking (ureq); the loop runs it on a blocking thread.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// What can go wrong with a query; every variant prints as one line naming the server.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    /// No answer: refused, timed out, DNS.
    #[error("Prometheus at {url} unreachable: {msg}")]
    Unreachable {
        /// The base URL.
        url: String,
        /// What failed.
        msg: String,
    },
    /// An HTTP error or `status: error` answer.
    #[error("Prometheus at {url} answered {code} to {query:?}: {msg}")]
    Failed {
        /// The base URL.
        url: String,
        /// HTTP status.
        code: u16,
        /// The query.
        query: String,
        /// Its error text.
        msg: String,
    },
    /// A body that is not the API's JSON.
    #[error("Prometheus at {url}: cannot parse the answer to {query:?}: {msg}")]
    Parse {
        /// The base URL.
        url: String,
        /// The query.
        query: String,
        /// The parse error.
        msg: String,
    },
}

/// One element of an instant vector: its labels and (timestamp, value).
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The series' labels.
    pub labels: BTreeMap<String, String>,
    /// Evaluation (or, for `timestamp()`, sample) time, Unix seconds.
    pub t: f64,
    /// The value (may be NaN).
    pub value: f64,
}

/// A Prometheus server.
#[derive(Clone, Debug)]
pub struct Prometheus {
    base: String,
    agent: ureq::Agent,
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VecItem {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// Parses a sample value as Prometheus writes it (`"1.5"`, `"NaN"`, `"+Inf"`).
fn value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

impl Prometheus {
    /// A client for `url` (`http://host:port[/prefix]`) with `timeout` per request.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        let base = url.trim_end_matches('/').to_string();
        if !base.starts_with("http://") {
            return Err(format!(
                "--prometheus {url}: expected an http:// URL (this client speaks plain HTTP)"
            ));
        }
        let agent = ureq::AgentBuilder::new()
            .timeout(timeout)
            .max_idle_connections(4)
            .build();
        Ok(Prometheus { base, agent })
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Runs an instant query; a scalar answer is returned as one sample without labels.
    pub fn query(&self, q: &str) -> Result<Vec<Sample>, PromError> {
        let url = format!("{}/api/v1/query", self.base);
        let resp = self.agent.get(&url).query("query", q).call();
        let body = match resp {
            Ok(r) => r.into_string(),
            Err(ureq::Error::Status(code, r)) => {
                let text = r.into_string().unwrap_or_default();
                let msg = serde_json::from_str::<Answer>(&text)
                    .ok()
                    .and_then(|a| a.error)
                    .unwrap_or(text);
                return Err(PromError::Failed {
                    url: self.base.clone(),
                    code,
                    query: q.into(),
                    msg: one_line(&msg),
                });
            }
            Err(e) => {
                return Err(PromError::Unreachable {
                    url: self.base.clone(),
                    msg: one_line(&e.to_string()),
                });
            }
        }
        .map_err(|e| PromError::Unreachable {
            url: self.base.clone(),
            msg: one_line(&e.to_string()),
        })?;
        parse_answer(&body).map_err(|msg| PromError::Parse {
            url: self.base.clone(),
            query: q.into(),
            msg,
        })
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses an `/api/v1/query` body into samples.
pub fn parse_answer(body: &str) -> Result<Vec<Sample>, String> {
    let a: Answer = serde_json::from_str(body).map_err(|e| e.to_string())?;
    if a.status != "success" {
        return Err(a.error.unwrap_or_else(|| format!("status {}", a.status)));
    }
    let d = a.data.ok_or("no data")?;
    match d.result_type.as_str() {
        "vector" => {
            let items: Vec<VecItem> =
                serde_json::from_value(d.result).map_err(|e| e.to_string())?;
            items
                .into_iter()
                .map(|i| {
                    Ok(Sample {
                        value: value(&i.value.1).ok_or(format!("bad value {:?}", i.value.1))?,
                        labels: i.metric,
                        t: i.value.0,
                    })
                })
                .collect()
        }
        "scalar" => {
            let (t, v): (f64, String) =
                serde_json::from_value(d.result).map_err(|e| e.to_string())?;
            Ok(vec![Sample {
                labels: BTreeMap::new(),
                t,
                value: value(&v).ok_or(format!("bad value {v:?}"))?,
            }])
        }
        other => Err(format!("result type {other}, expected vector or scalar")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vectors_scalars_and_nan() {
        let v = parse_answer(
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"pod":"a"},"value":[1700000000.5,"3"]},
                {"metric":{"pod":"b"},"value":[1700000000.5,"NaN"]}]}}"#,
        )
        .unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].labels["pod"], "a");
        assert_eq!((v[0].t, v[0].value), (1700000000.5, 3.0));
        assert!(v[1].value.is_nan());
        let s = parse_answer(
            r#"{"status":"success","data":{"resultType":"scalar","result":[1.0,"+Inf"]}}"#,
        )
        .unwrap();
        assert_eq!(s[0].value, f64::INFINITY);
        let e = parse_answer(r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#)
            .unwrap_err();
        assert_eq!(e, "parse error");
        assert!(parse_answer("<html>").is_err());
    }

    #[test]
    fn refuses_https_and_names_an_unreachable_server() {
        assert!(Prometheus::new("https://x:9090", Duration::from_secs(1)).is_err());
        // Port 1 on loopback: nothing listens there.
        let p = Prometheus::new("http://127.0.0.1:1/", Duration::from_secs(2)).unwrap();
        let e = p.query("up").unwrap_err().to_string();
        assert!(
            e.contains("http://127.0.0.1:1") && e.contains("unreachable"),
            "{e}"
        );
        assert!(!e.contains('\n'));
    }
}
