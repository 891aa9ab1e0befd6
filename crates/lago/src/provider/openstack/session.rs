//! A Keystone v3 session: password authentication, the token, the service catalog (the
//! endpoints of compute, network and image in the cloud's region), and the REST calls over
//! `ureq`. Every failed call is an error carrying the method, the URL, the status and the
//! API's own message.

use std::time::Duration;

use serde_json::{Value, json};

use super::OpenstackError;
use super::cloud::Credentials;

/// The compute API version lago speaks (tags on servers at creation: 2.52; `user_data` on
/// rebuild: 2.57; `image_id` in `createImage`'s answer: 2.45).
pub const COMPUTE_VERSION: &str = "2.60";

/// One authenticated session.
pub struct Session {
    agent: ureq::Agent,
    token: String,
    /// The project the token is scoped to.
    pub project_id: String,
    catalog: Vec<Value>,
    /// The credentials it was made from.
    pub creds: Credentials,
}

/// What a call answered: its status and its JSON body (`Null` when empty or not JSON).
pub type Answer = (u16, Value);

/// The API's own message in an error answer: Keystone's `error.message`, Nova's
/// `{"itemNotFound": {"message": ...}}`, Neutron's `NeutronError.message`, else the text.
pub fn api_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        if let Some(m) = v.get("error").and_then(|e| e.get("message")).and_then(Value::as_str) {
            return m.to_owned();
        }
        if let Some(m) = v.get("message").and_then(Value::as_str) {
            return m.to_owned();
        }
        if let Some(obj) = v.as_object()
            && let Some(m) = obj.values().find_map(|x| x.get("message").and_then(Value::as_str))
        {
            return m.to_owned();
        }
    }
    let text = body.split_whitespace().collect::<Vec<_>>().join(" ");
    text.chars().take(400).collect()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into()
}

/// One HTTP call: `(status, X-Subject-Token, body)`.
fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<(u16, Option<String>, String), OpenstackError> {
    let transport = |e: ureq::Error| OpenstackError::Transport {
        method: method.to_owned(),
        url: url.to_owned(),
        message: e.to_string(),
    };
    tracing::debug!(method, url, "OpenStack call");
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = match body {
        Some(b) => agent.run(req.body(b).map_err(|e| transport(e.into()))?),
        None => agent.run(req.body(()).map_err(|e| transport(e.into()))?),
    }
    .map_err(transport)?;
    let status = resp.status().as_u16();
    let token = resp.headers().get("X-Subject-Token").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let text = resp.into_body().read_to_string().unwrap_or_default();
    Ok((status, token, text))
}

impl Session {
    /// Authenticates with `creds` (Keystone v3, password, scoped to the project).
    pub fn login(creds: &Credentials) -> Result<Self, OpenstackError> {
        let agent = agent();
        let base = creds.auth_url.trim_end_matches('/');
        let url = if base.ends_with("/v3") { format!("{base}/auth/tokens") } else { format!("{base}/v3/auth/tokens") };
        let project = match (&creds.project_id, &creds.project_name) {
            (Some(id), _) => json!({"id": id}),
            (None, Some(name)) => json!({"name": name, "domain": {"name": creds.project_domain}}),
            (None, None) => {
                return Err(OpenstackError::CloudEntry {
                    origin: creds.source.clone(),
                    missing: "a project (project_name or project_id)".into(),
                });
            }
        };
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": creds.username, "domain": {"name": creds.user_domain}, "password": creds.password}}},
            "scope": {"project": project}}});
        let (status, token, text) =
            call(&agent, "POST", &url, &[("Content-Type", "application/json")], Some(body.to_string().into_bytes()))?;
        if status == 401 {
            return Err(OpenstackError::BadCredentials {
                origin: creds.source.clone(),
                user: creds.username.clone(),
                auth_url: creds.auth_url.clone(),
                message: api_message(&text),
            });
        }
        if !(200..300).contains(&status) {
            return Err(OpenstackError::Api { method: "POST".into(), url, status, message: api_message(&text) });
        }
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let token = token.ok_or_else(|| OpenstackError::Api {
            method: "POST".into(),
            url: url.clone(),
            status,
            message: "Keystone gave no X-Subject-Token".into(),
        })?;
        Ok(Self {
            agent,
            token,
            project_id: v["token"]["project"]["id"].as_str().unwrap_or_default().to_owned(),
            catalog: v["token"]["catalog"].as_array().cloned().unwrap_or_default(),
            creds: creds.clone(),
        })
    }

    /// The public endpoint of service `kind` (`compute`, `network`, `image`) in the region, with
    /// the API version the calls use (`/v2.0` for network, `/v2` for image).
    pub fn endpoint(&self, kind: &str) -> Result<String, OpenstackError> {
        let region = self.creds.region.as_deref();
        let url = self
            .catalog
            .iter()
            .filter(|s| s["type"] == kind)
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .find(|e| {
                e["interface"] == "public"
                    && region.is_none_or(|r| e["region"].as_str() == Some(r) || e["region_id"].as_str() == Some(r))
            })
            .and_then(|e| e["url"].as_str().map(|u| u.trim_end_matches('/').to_owned()))
            .ok_or_else(|| OpenstackError::NoEndpoint {
                service: kind.to_owned(),
                region: region.unwrap_or("any region").to_owned(),
                origin: self.creds.source.clone(),
            })?;
        Ok(match kind {
            "network" if !url.ends_with("/v2.0") => format!("{url}/v2.0"),
            "image" if !url.ends_with("/v2") => format!("{url}/v2"),
            _ => url,
        })
    }

    /// A call to service `kind` at `path` with a JSON body; an answer outside 2xx is an error.
    pub fn request(&self, method: &str, kind: &str, path: &str, body: Option<&Value>) -> Result<Value, OpenstackError> {
        self.request_allowing(method, kind, path, body, &[]).map(|(_, v)| v)
    }

    /// A call that may answer any status (404 of a resource already gone...): the answer, or
    /// the error naming the call for a status outside 2xx and `allowed`.
    pub fn request_allowing(
        &self,
        method: &str,
        kind: &str,
        path: &str,
        body: Option<&Value>,
        allowed: &[u16],
    ) -> Result<Answer, OpenstackError> {
        let url = format!("{}{path}", self.endpoint(kind)?);
        // A PUT without a body says so with `Content-Length: 0` (Glance refuses a chunked one).
        let payload = body.map(|b| b.to_string().into_bytes()).or_else(|| (method == "PUT").then(Vec::new));
        let mut headers = vec![("X-Auth-Token", self.token.as_str()), ("Accept", "application/json")];
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        if kind == "compute" {
            headers.push(("OpenStack-API-Version", "compute 2.60"));
            headers.push(("X-OpenStack-Nova-API-Version", COMPUTE_VERSION));
        }
        let (status, _, text) = call(&self.agent, method, &url, &headers, payload)?;
        if (200..300).contains(&status) || allowed.contains(&status) {
            return Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)));
        }
        Err(OpenstackError::Api { method: method.to_owned(), url, status, message: api_message(&text) })
    }

    /// `GET`.
    pub fn get(&self, kind: &str, path: &str) -> Result<Value, OpenstackError> {
        self.request("GET", kind, path, None)
    }

    /// `POST` with a JSON body.
    pub fn post(&self, kind: &str, path: &str, body: &Value) -> Result<Value, OpenstackError> {
        self.request("POST", kind, path, Some(body))
    }

    /// `PUT` with a JSON body.
    pub fn put(&self, kind: &str, path: &str, body: &Value) -> Result<Value, OpenstackError> {
        self.request("PUT", kind, path, Some(body))
    }

    /// `DELETE`; a resource already gone (404) is no error.
    pub fn delete(&self, kind: &str, path: &str) -> Result<(), OpenstackError> {
        self.request_allowing("DELETE", kind, path, None, &[404]).map(|_| ())
    }

    /// Uploads the file at `file` as the data of Glance image `id`.
    pub fn upload(&self, id: &str, file: &std::path::Path) -> Result<(), OpenstackError> {
        let url = format!("{}/images/{id}/file", self.endpoint("image")?);
        let data =
            std::fs::read(file).map_err(|e| OpenstackError::Read { path: file.to_owned(), message: e.to_string() })?;
        let headers = [("X-Auth-Token", self.token.as_str()), ("Content-Type", "application/octet-stream")];
        let (status, _, text) = call(&self.agent, "PUT", &url, &headers, Some(data))?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(OpenstackError::Api { method: "PUT".into(), url, status, message: api_message(&text) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apis_own_words_are_found_in_each_services_error_shape() {
        assert_eq!(
            api_message(r#"{"error": {"code": 401, "message": "The request you have made requires authentication."}}"#),
            "The request you have made requires authentication."
        );
        assert_eq!(
            api_message(r#"{"itemNotFound": {"code": 404, "message": "Flavor x could not be found."}}"#),
            "Flavor x could not be found."
        );
        assert_eq!(
            api_message(r#"{"NeutronError": {"type": "X", "message": "Quota exceeded", "detail": ""}}"#),
            "Quota exceeded"
        );
        assert_eq!(api_message("<html>\n 413 Too big\n</html>"), "<html> 413 Too big </html>");
    }
}
