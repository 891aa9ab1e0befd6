//! A fake OpenStack cloud for the tests: an HTTP server on 127.0.0.1 answering the Keystone,
//! Nova, Neutron and Glance calls the provider makes, its catalog pointing at itself. It keeps
//! its resources in memory and logs every call (`METHOD path`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// The password the fake accepts.
pub const PASSWORD: &str = "secret";

/// What the fake holds.
#[derive(Default)]
pub struct State {
    /// Resources by kind (`servers`, `networks`, `subnets`, `ports`, `images`).
    pub store: BTreeMap<String, Vec<Value>>,
    /// Every call: `METHOD path`.
    pub log: Vec<String>,
    /// Flavors.
    pub flavors: Vec<Value>,
    /// Nova's quota set (`{"cores": {"limit", "in_use"}, ...}`).
    pub compute_quota: Value,
    /// Creating a server fails with this message (a 400).
    pub fail_server: Option<String>,
    next: u64,
}

impl State {
    fn id(&mut self) -> String {
        self.next += 1;
        format!("00000000-0000-0000-0000-{:012}", self.next)
    }

    /// The resources of `kind`.
    pub fn all(&self, kind: &str) -> Vec<Value> {
        self.store.get(kind).cloned().unwrap_or_default()
    }
}

/// A running fake cloud.
pub struct FakeCloud {
    /// Its Keystone URL.
    pub auth_url: String,
    /// Its state.
    pub state: Arc<Mutex<State>>,
}

fn answer(status: u16, body: &Value, extra: &str) -> Vec<u8> {
    let text = if body.is_null() { String::new() } else { body.to_string() };
    format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{text}",
        text.len()
    )
    .into_bytes()
}

fn query(q: &str) -> Vec<(String, String)> {
    q.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

fn matches(r: &Value, filters: &[(String, String)]) -> bool {
    filters.iter().all(|(k, v)| match k.as_str() {
        "limit" => true,
        "tags" | "tag" => r["tags"].as_array().is_some_and(|t| t.iter().any(|x| x == v.as_str())),
        _ => r[k].as_str().map(str::to_owned).or_else(|| r[k].as_u64().map(|n| n.to_string())).as_deref() == Some(v),
    })
}

impl FakeCloud {
    /// Starts one, with flavors `lago.<ram>.<vcpus>` of 256, 512 and 1024 MiB, and a quota of
    /// 10 instances, 20 cores, 50 GiB.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            flavors: vec![
                json!({"id": "f1024", "name": "lago.1024.2", "ram": 1024, "vcpus": 2, "disk": 10}),
                json!({"id": "f256", "name": "lago.256.1", "ram": 256, "vcpus": 1, "disk": 2}),
                json!({"id": "f512", "name": "lago.512.1", "ram": 512, "vcpus": 1, "disk": 5}),
            ],
            compute_quota: json!({"instances": {"limit": 10, "in_use": 0, "reserved": 0},
                "cores": {"limit": 20, "in_use": 0, "reserved": 0}, "ram": {"limit": 51200, "in_use": 0, "reserved": 0}}),
            ..State::default()
        }));
        let mgmt_net = json!({"id": "mgmt-net", "name": "lago-mgmt", "tags": [], "shared": true});
        let mgmt_subnet =
            json!({"id": "mgmt-subnet", "network_id": "mgmt-net", "cidr": "10.20.0.0/24", "ip_version": 4, "tags": []});
        {
            let mut s = state.lock().unwrap();
            s.store.insert("networks".into(), vec![mgmt_net]);
            s.store.insert("subnets".into(), vec![mgmt_subnet]);
        }
        let shared = state.clone();
        let auth_url = format!("{base}/identity/v3");
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut length = 0usize;
                let mut chunked = false;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if h.to_ascii_lowercase().starts_with("transfer-encoding:") {
                        chunked = true;
                    }
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or_default().to_owned();
                let target = parts.next().unwrap_or_default().to_owned();
                // Glance refuses a body where none is expected (a tag's PUT), chunked or not.
                let reply = if (chunked || !body.is_empty()) && target.contains("/tags/") {
                    answer(400, &json!({"message": "A body is not expected with this request."}), "")
                } else {
                    handle(&shared, &base, &method, &target, &body)
                };
                let _ = conn.write_all(&reply);
            }
        });
        Self { auth_url, state }
    }

    /// Credentials of this cloud with `password`.
    pub fn credentials(&self, password: &str) -> super::cloud::Credentials {
        super::cloud::Credentials {
            source: "cloud fake of clouds.yaml".into(),
            auth_url: self.auth_url.clone(),
            username: "lago".into(),
            password: password.into(),
            project_name: Some("lago".into()),
            project_id: None,
            user_domain: "Default".into(),
            project_domain: "Default".into(),
            region: Some("RegionOne".into()),
        }
    }

    /// The calls made, except the reads (`GET`).
    pub fn writes(&self) -> Vec<String> {
        self.state.lock().unwrap().log.iter().filter(|l| !l.starts_with("GET ")).cloned().collect()
    }
}

fn handle(state: &Arc<Mutex<State>>, base: &str, method: &str, target: &str, body: &[u8]) -> Vec<u8> {
    let mut s = state.lock().unwrap();
    let (path, q) = target.split_once('?').unwrap_or((target, ""));
    s.log.push(format!("{method} {path}"));
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let not_found =
        || answer(404, &json!({"itemNotFound": {"code": 404, "message": format!("{path} could not be found.")}}), "");
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, seg.as_slice()) {
        ("POST", ["identity", "v3", "auth", "tokens"]) => {
            let pw = &body["auth"]["identity"]["password"]["user"]["password"];
            if pw != PASSWORD {
                return answer(
                    401,
                    &json!({"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}}),
                    "",
                );
            }
            let ep = |t: &str, p: &str| json!({"type": t, "endpoints": [{"interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": format!("{base}{p}")}]});
            let catalog = json!([ep("compute", "/compute/v2.1"), ep("network", "/network"), ep("image", "/image")]);
            answer(201, &json!({"token": {"project": {"id": "p1"}, "catalog": catalog}}), "X-Subject-Token: tok\r\n")
        }
        ("GET", ["compute", "v2.1", "flavors", "detail"]) => answer(200, &json!({"flavors": s.flavors}), ""),
        ("GET", ["compute", "v2.1", "os-quota-sets", _, "detail"]) => {
            let mut q = s.compute_quota.clone();
            let servers = s.all("servers");
            q["instances"]["in_use"] = json!(q["instances"]["in_use"].as_i64().unwrap_or(0) + servers.len() as i64);
            answer(200, &json!({"quota_set": q}), "")
        }
        ("GET", ["network", "v2.0", "quotas", _, "details.json"]) => {
            let used = |k: &str| s.all(k).len();
            answer(
                200,
                &json!({"quota": {"network": {"limit": 100, "used": used("networks"), "reserved": 0},
                "subnet": {"limit": 100, "used": used("subnets"), "reserved": 0}, "port": {"limit": 500, "used": used("ports"), "reserved": 0}}}),
                "",
            )
        }
        ("GET", ["compute", "v2.1", "servers", "detail"]) => {
            let f = query(q);
            let list: Vec<Value> = s.all("servers").into_iter().filter(|r| matches(r, &f)).collect();
            answer(200, &json!({"servers": list}), "")
        }
        ("POST", ["compute", "v2.1", "servers"]) => {
            if let Some(m) = s.fail_server.clone() {
                return answer(400, &json!({"badRequest": {"code": 400, "message": m}}), "");
            }
            let mut srv = body["server"].clone();
            srv["id"] = json!(s.id());
            srv["status"] = json!("ACTIVE");
            s.store.entry("servers".into()).or_default().push(srv.clone());
            answer(202, &json!({"server": {"id": srv["id"]}}), "")
        }
        ("GET", ["compute", "v2.1", "servers", id]) => match s.all("servers").into_iter().find(|r| r["id"] == *id) {
            Some(r) => answer(200, &json!({"server": r}), ""),
            None => not_found(),
        },
        ("DELETE", ["compute", "v2.1", "servers", id]) => {
            let list = s.store.entry("servers".into()).or_default();
            let before = list.len();
            list.retain(|r| r["id"] != *id);
            if list.len() == before { not_found() } else { answer(204, &Value::Null, "") }
        }
        ("POST", ["compute", "v2.1", "servers", id, "action"]) => {
            let id = (*id).to_owned();
            let (action, arg) =
                body.as_object().and_then(|o| o.iter().next()).map(|(k, v)| (k.clone(), v.clone())).unwrap_or_default();
            if action == "createImage" {
                let image_id = s.id();
                let mut image = json!({"id": image_id, "status": "active", "name": arg["name"], "tags": []});
                for (k, v) in arg["metadata"].as_object().cloned().unwrap_or_default() {
                    image[k] = v;
                }
                s.store.entry("images".into()).or_default().push(image);
                return answer(202, &json!({"image_id": image_id}), "");
            }
            let Some(srv) = s.store.entry("servers".into()).or_default().iter_mut().find(|r| r["id"] == id.as_str())
            else {
                return not_found();
            };
            let status = match action.as_str() {
                "os-stop" => "SHUTOFF",
                "os-start" | "unpause" => "ACTIVE",
                "pause" => "PAUSED",
                "rebuild" => {
                    srv["imageRef"] = arg["imageRef"].clone();
                    "ACTIVE"
                }
                _ => return answer(400, &json!({"badRequest": {"code": 400, "message": "unknown action"}}), ""),
            };
            srv["status"] = json!(status);
            answer(202, &Value::Null, "")
        }
        ("GET", ["network", "v2.0", kind]) => {
            let f = query(q);
            let list: Vec<Value> = s.all(kind).into_iter().filter(|r| matches(r, &f)).collect();
            answer(200, &json!({*kind: list}), "")
        }
        ("POST", ["network", "v2.0", kind]) => {
            let one = kind.trim_end_matches('s');
            let mut r = body[one].clone();
            r["id"] = json!(s.id());
            r["tags"] = json!([]);
            if *kind == "ports" {
                if r["mac_address"].is_null() {
                    r["mac_address"] = json!(format!("fa:16:3e:00:00:{:02x}", s.next % 256));
                }
                if r["fixed_ips"].is_null() {
                    let n = s.all("ports").len() + 10;
                    r["fixed_ips"] = json!([{"subnet_id": "mgmt-subnet", "ip_address": format!("10.20.0.{n}")}]);
                }
            }
            s.store.entry((*kind).to_owned()).or_default().push(r.clone());
            answer(201, &json!({one: r}), "")
        }
        ("PUT", ["network", "v2.0", kind, id, "tags"]) => {
            match s.store.entry((*kind).to_owned()).or_default().iter_mut().find(|r| r["id"] == *id) {
                Some(r) => {
                    r["tags"] = body["tags"].clone();
                    answer(200, &body, "")
                }
                None => not_found(),
            }
        }
        ("PUT", ["network", "v2.0", "ports", id]) => {
            match s.store.entry("ports".into()).or_default().iter_mut().find(|r| r["id"] == *id) {
                Some(r) => {
                    for (k, v) in body["port"].as_object().cloned().unwrap_or_default() {
                        r[k] = v;
                    }
                    answer(200, &json!({"port": r}), "")
                }
                None => not_found(),
            }
        }
        ("DELETE", ["network", "v2.0", kind, id]) => {
            let id = (*id).to_owned();
            if *kind == "networks" && s.all("ports").iter().any(|p| p["network_id"] == id.as_str()) {
                return answer(
                    409,
                    &json!({"NeutronError": {"type": "NetworkInUse", "message": format!("Unable to complete operation on network {id}. There are one or more ports still in use on the network."), "detail": ""}}),
                    "",
                );
            }
            if *kind == "subnets" && s.all("ports").iter().any(|p| p["fixed_ips"][0]["subnet_id"] == id.as_str()) {
                return answer(
                    409,
                    &json!({"NeutronError": {"type": "SubnetInUse", "message": "in use", "detail": ""}}),
                    "",
                );
            }
            let list = s.store.entry((*kind).to_owned()).or_default();
            let before = list.len();
            list.retain(|r| r["id"] != id.as_str());
            if *kind == "networks" {
                s.store.entry("subnets".into()).or_default().retain(|r| r["network_id"] != id.as_str());
            }
            if s.all(kind).len() == before { not_found() } else { answer(204, &Value::Null, "") }
        }
        ("GET", ["image", "v2", "images"]) => {
            let f = query(q);
            let list: Vec<Value> = s.all("images").into_iter().filter(|r| matches(r, &f)).collect();
            answer(200, &json!({"images": list}), "")
        }
        ("POST", ["image", "v2", "images"]) => {
            let mut r = body.clone();
            r["id"] = json!(s.id());
            r["status"] = json!("queued");
            s.store.entry("images".into()).or_default().push(r.clone());
            answer(201, &r, "")
        }
        ("PUT", ["image", "v2", "images", id, "file"]) => {
            match s.store.entry("images".into()).or_default().iter_mut().find(|r| r["id"] == *id) {
                Some(r) => {
                    r["status"] = json!("active");
                    answer(204, &Value::Null, "")
                }
                None => not_found(),
            }
        }
        ("PUT", ["image", "v2", "images", id, "tags", t]) => {
            match s.store.entry("images".into()).or_default().iter_mut().find(|r| r["id"] == *id) {
                Some(r) => {
                    let mut tags = r["tags"].as_array().cloned().unwrap_or_default();
                    tags.push(json!(t));
                    r["tags"] = json!(tags);
                    answer(204, &Value::Null, "")
                }
                None => not_found(),
            }
        }
        ("GET", ["image", "v2", "images", id]) => match s.all("images").into_iter().find(|r| r["id"] == *id) {
            Some(r) => answer(200, &r, ""),
            None => not_found(),
        },
        ("DELETE", ["image", "v2", "images", id]) => {
            let list = s.store.entry("images".into()).or_default();
            let before = list.len();
            list.retain(|r| r["id"] != *id);
            if list.len() == before { not_found() } else { answer(204, &Value::Null, "") }
        }
        _ => not_found(),
    }
}
