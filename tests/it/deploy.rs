//! The deployment files, checked without a container engine (none runs in CI): the image
//! builds from exactly what the `Dockerfile` copies and runs as an unprivileged user; every
//! file, volume, port, setting and health check `docker-compose.yml` names exists and agrees
//! with the configurations it mounts; the systemd unit is hardened; the production
//! configurations load (nats-server itself checks its files).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use nats_callout::config::Config;
use serde_norway::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The instructions of one stage of the Dockerfile: (instruction, arguments).
fn dockerfile_stages() -> Vec<Vec<(String, String)>> {
    let text = read("Dockerfile").replace("\\\n", " ");
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (op, args) = line.split_once(' ').unwrap_or((line, ""));
        let op = op.to_ascii_uppercase();
        if op == "FROM" {
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .expect("the Dockerfile starts with FROM")
            .push((op, args.trim().to_string()));
    }
    stages
}

/// `COPY a b dst` without `--from`: (sources, destination).
fn copies(stage: &[(String, String)]) -> Vec<(Vec<String>, String)> {
    stage
        .iter()
        .filter(|(op, args)| op == "COPY" && !args.starts_with("--from"))
        .map(|(_, args)| {
            let mut parts: Vec<String> = args.split_whitespace().map(String::from).collect();
            let dst = parts.pop().unwrap();
            (parts, dst)
        })
        .collect()
}

fn copy_into(src: &Path, dst: &Path) {
    if src.is_dir() {
        std::fs::create_dir_all(dst).unwrap();
        for e in std::fs::read_dir(src).unwrap() {
            let e = e.unwrap();
            copy_into(&e.path(), &dst.join(e.file_name()));
        }
    } else {
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(src, dst).unwrap();
    }
}

/// Paths `.dockerignore` leaves out of the build context.
fn docker_ignored() -> Vec<String> {
    read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// The build stage compiles from exactly what it copies: those paths, copied to a temp dir
/// the way the Dockerfile lays them out, pass `cargo check --locked` (a missing COPY of an
/// embedded file or a declared target fails here, as it would in `docker build`; the build
/// script runs there without `.git`, as in the image).
#[test]
fn the_image_builds_from_what_the_dockerfile_copies() {
    let stages = dockerfile_stages();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    let build = &stages[0];
    let workdir = build
        .iter()
        .find(|(op, _)| op == "WORKDIR")
        .map(|(_, a)| a.clone())
        .expect("the build stage has a WORKDIR");
    let run = build
        .iter()
        .find(|(op, _)| op == "RUN")
        .expect("the build stage builds");
    // The lean artifact (docs/src/release.md), and it is what the runtime stage copies.
    assert!(
        run.1.contains("--locked") && run.1.contains("--profile dist"),
        "{}",
        run.1
    );
    assert!(
        stages[1].iter().any(|(op, a)| op == "COPY"
            && a.starts_with("--from=build")
            && a.contains("/target/dist/nats-callout ")),
        "the image holds the dist binary"
    );
    let ignored = docker_ignored();
    let ctx = tempfile::tempdir().unwrap();
    for (sources, dst) in copies(build) {
        for src in sources {
            assert!(repo().join(&src).exists(), "COPY {src}: not in the repository");
            assert!(
                !ignored
                    .iter()
                    .any(|i| src == *i || src.starts_with(&format!("{i}/"))),
                "COPY {src}: excluded by .dockerignore"
            );
            let target = if dst.ends_with('/') || dst == "." || dst == "./" {
                let rel = dst.trim_start_matches("./").trim_end_matches('/');
                let name = Path::new(&src).file_name().unwrap();
                ctx.path().join(rel).join(name)
            } else {
                ctx.path().join(dst.trim_start_matches("./"))
            };
            copy_into(&repo().join(&src), &target);
        }
    }
    let target_dir = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join("target"));
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["check", "--locked", "--offline", "--bin", "nats-callout"])
        .current_dir(ctx.path())
        .env("CARGO_TARGET_DIR", target_dir.join("docker-context"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the image's build context ({workdir}) does not build:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The runtime stage: everything it copies exists, it runs as the unprivileged user it
    // creates, and its configuration and health check are real.
    let runtime = &stages[1];
    for (sources, _) in copies(runtime) {
        for src in sources {
            assert!(repo().join(&src).exists(), "COPY {src}: not in the repository");
        }
    }
    let user = runtime
        .iter()
        .find(|(op, _)| op == "USER")
        .map(|(_, a)| a.clone())
        .expect("the image names its user");
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "runs as {user}"
    );
    let uid = user.split(':').next().unwrap();
    assert!(
        runtime
            .iter()
            .any(|(op, a)| op == "RUN" && a.contains(&format!("--uid {uid}"))),
        "USER {user} is created in the image"
    );
    let healthcheck = runtime
        .iter()
        .find(|(op, _)| op == "HEALTHCHECK")
        .expect("a health check");
    assert!(
        healthcheck.1.contains("\"nats-callout\", \"healthcheck\""),
        "{}",
        healthcheck.1
    );
}

fn compose() -> Value {
    serde_norway::from_str(&read("docker-compose.yml")).expect("docker-compose.yml is YAML")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| s.iter().filter_map(|x| x.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// `host:container` port mappings of a service, as (host address, host port, container port).
fn ports(service: &Value) -> Vec<(String, u16, u16)> {
    strings(&service["ports"])
        .iter()
        .map(|p| {
            let parts: Vec<&str> = p.split(':').collect();
            assert_eq!(parts.len(), 3, "port {p:?} names the host address");
            (
                parts[0].to_string(),
                parts[1].parse().unwrap(),
                parts[2].parse().unwrap(),
            )
        })
        .collect()
}

/// A service's volumes: mount point -> source (a named volume, or a ./path).
fn mounts(service: &Value) -> BTreeMap<String, String> {
    strings(&service["volumes"])
        .iter()
        .map(|v| {
            let parts: Vec<&str> = v.split(':').collect();
            (parts[1].to_string(), parts[0].to_string())
        })
        .collect()
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// The value of `key: value` in a nats-server.conf (the first one at any depth).
fn conf_value(conf: &str, key: &str) -> String {
    conf.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("{key} not in the nats-server configuration"))
        .trim()
        .trim_matches('"')
        .to_string()
}

/// docker-compose.yml agrees with itself, the Dockerfile and the configurations it mounts.
#[test]
fn the_compose_file_is_complete_and_consistent() {
    let c = compose();
    let services = &c["services"];
    let (keys, nats, callout) = (&services["keys"], &services["nats"], &services["callout"]);
    for name in ["keys", "nats", "callout"] {
        assert!(services[name].is_mapping(), "service {name}");
    }
    // One image, built once from this repository by the one-shot keys service.
    let image = keys["image"].as_str().unwrap();
    assert_eq!(keys["build"].as_str(), Some("."));
    assert!(repo().join("Dockerfile").exists());
    assert_eq!(callout["image"].as_str(), Some(image));
    assert!(callout.get("build").is_none(), "built once, by the keys service");

    // Volumes: every named one declared, every bind mount a real file.
    let declared: Vec<String> = c["volumes"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    for (name, svc) in [("keys", keys), ("nats", nats), ("callout", callout)] {
        for (mount, source) in mounts(svc) {
            if source.starts_with("./") {
                assert!(repo().join(&source).exists(), "{name}: {source} does not exist");
            } else {
                assert!(declared.contains(&source), "{name}: volume {source} not declared");
            }
            assert!(mount.starts_with('/'), "{name}: {mount}");
        }
    }
    let keys_dir = mounts(keys)
        .into_iter()
        .find(|(_, s)| s == "keys")
        .map(|(m, _)| m)
        .unwrap();
    assert_eq!(
        strings(&keys["command"]),
        ["keys", "--keep", "--dir", keys_dir.as_str()],
        "the keys service makes the keys once, into the volume"
    );
    assert_eq!(keys["restart"].as_str(), Some("no"));

    // nats-server: its configuration, the keys it includes, its ports and health check.
    let nats_mounts = mounts(nats);
    let conf_mount = strings(&nats["command"])
        .into_iter()
        .skip_while(|a| a != "-c")
        .nth(1)
        .expect("nats-server -c <file>");
    let conf_src = nats_mounts
        .get(&conf_mount)
        .expect("the configuration is mounted");
    let conf = read(conf_src.trim_start_matches("./"));
    let include = conf
        .lines()
        .find_map(|l| l.trim().strip_prefix("include "))
        .expect("the configuration includes the keys' variables")
        .trim()
        .trim_matches('"')
        .to_string();
    let nats_keys = nats_mounts
        .iter()
        .find(|(_, s)| *s == "keys")
        .map(|(m, _)| m.clone())
        .expect("nats-server mounts the keys");
    // nats-server resolves an include against the including file's directory.
    let conf_dir = Path::new(&conf_mount).parent().unwrap();
    assert!(
        !include.starts_with('/'),
        "nats-server would join {include} to {}",
        conf_dir.display()
    );
    assert_eq!(
        conf_dir.join(&include),
        Path::new(&nats_keys).join("nats-keys.conf")
    );
    let client_port = port_of(&conf_value(&conf, "listen"));
    let monitor = conf_value(&conf, "http");
    let ws_port = port_of(&conf_value(&conf[conf.find("websocket {").unwrap()..], "listen"));
    let nats_ports = ports(nats);
    for (host, _, _) in &nats_ports {
        assert_eq!(host, "127.0.0.1", "published on the host's loopback only");
    }
    let published: Vec<u16> = nats_ports.iter().map(|p| p.2).collect();
    assert_eq!(published, [client_port, ws_port]);
    let check = strings(&nats["healthcheck"]["test"]).join(" ");
    assert!(check.contains(&format!("http://{monitor}/healthz")), "{check}");
    assert_eq!(nats["restart"].as_str(), Some("unless-stopped"));
    assert_eq!(
        nats["user"].as_str(),
        Some("10001:10001"),
        "reads the 0600 key files"
    );

    // nats-callout: its configuration (the one in the image, or the variable), the volumes
    // its paths live on, the ports it listens on, its health check.
    let config_path = callout["environment"]["NATS_CALLOUT_CONFIG"].as_str().unwrap();
    let dockerfile = read("Dockerfile");
    let (config_src, _) = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .map(|l| l.rsplit_once(' ').unwrap())
        .find(|(_, dst)| *dst == config_path)
        .expect("the image holds the configuration the variable names");
    let config = Config::load(&repo().join(config_src)).expect("the compose configuration loads");
    let callout_mounts = mounts(callout);
    let data_dir = callout_mounts
        .iter()
        .find(|(_, s)| *s == "data")
        .map(|(m, _)| m.clone())
        .unwrap();
    assert_eq!(callout_mounts.get(&keys_dir).map(String::as_str), Some("keys"));
    assert!(
        config.tokens.store_path.starts_with(&data_dir),
        "the token store is on the writable volume"
    );
    for key in [
        &config.callout.issuer_seed_file,
        config.callout.xkey_seed_file.as_ref().unwrap(),
        &config.tokens.signing_key_file,
        &config.tokens.refresh_secret_file,
        config.nats.password_file.as_ref().unwrap(),
        config.nats.system_password_file.as_ref().unwrap(),
    ] {
        assert!(
            key.starts_with(&keys_dir),
            "{} is not on the keys volume",
            key.display()
        );
        let name = key.file_name().unwrap().to_str().unwrap();
        assert!(
            nats_callout::keys::KEY_FILES.contains(&name),
            "{name} is not a file `keys` writes"
        );
    }
    assert_eq!(config.nats.url, format!("nats://nats:{client_port}"));
    let callout_ports = ports(callout);
    for (host, _, _) in &callout_ports {
        assert_eq!(host, "127.0.0.1", "published on the host's loopback only");
    }
    let published: Vec<u16> = callout_ports.iter().map(|p| p.2).collect();
    assert_eq!(
        published,
        [port_of(&config.http.listen), port_of(&config.http.admin_listen)]
    );
    let page = format!("http://127.0.0.1:{}", callout_ports[0].1);
    assert!(config.http.allowed_origins.contains(&page));
    assert!(
        conf.contains(&format!("\"{page}\"")),
        "the websocket allows the page's origin"
    );
    assert_eq!(config.http.websocket_port, ws_port);
    assert_eq!(
        strings(&callout["healthcheck"]["test"]),
        ["CMD", "nats-callout", "healthcheck"]
    );
    assert_eq!(
        callout["depends_on"]["nats"]["condition"].as_str(),
        Some("service_healthy")
    );
    assert_eq!(
        callout["depends_on"]["keys"]["condition"].as_str(),
        Some("service_completed_successfully")
    );
    assert_eq!(callout["restart"].as_str(), Some("unless-stopped"));
    // Every variable names a real option.
    let help = Command::new(env!("CARGO_BIN_EXE_nats-callout"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for (k, _) in callout["environment"].as_mapping().unwrap() {
        let k = k.as_str().unwrap();
        assert!(help.contains(k), "{k} is not a variable nats-callout reads");
    }

    // nats-server itself accepts the file, laid out as in the container, with keys made as
    // the keys service makes them.
    let dir = tempfile::tempdir().unwrap();
    let keys_at = dir.path().join(Path::new(&include).parent().unwrap());
    nats_callout::keys::generate(&keys_at, false).unwrap();
    nats_server_accepts(dir.path(), &conf);
}

/// The systemd unit runs the service with the hardening an operator expects, and its
/// credentials reach the configuration.
#[test]
fn the_systemd_unit_is_hardened() {
    let unit = read("deploy/systemd/nats-callout.service");
    let has = |line: &str| unit.lines().any(|l| l.trim() == line);
    for line in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "StateDirectory=nats-callout",
        "Restart=on-failure",
    ] {
        assert!(has(line), "missing {line}");
    }
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
    assert!(
        exec.contains("nats-callout serve --config /etc/nats-callout/callout.toml"),
        "{exec}"
    );
    let config =
        Config::load(&repo().join("deploy/production/callout.toml")).expect("production configuration");
    // Each seed and password comes in as a credential: the unit loads it and points the
    // setting at it.
    for (setting, path) in [
        ("CALLOUT__ISSUER_SEED_FILE", "issuer.nk"),
        ("CALLOUT__XKEY_SEED_FILE", "xkey.xk"),
        ("TOKENS__SIGNING_KEY_FILE", "token-signing.pem"),
        ("TOKENS__REFRESH_SECRET_FILE", "refresh.key"),
        ("NATS__NKEY_SEED_FILE", "callout.nk"),
        ("NATS__SYSTEM_PASSWORD_FILE", "sys.pass"),
    ] {
        assert!(
            unit.lines()
                .any(|l| l.starts_with(&format!("LoadCredential={path}:"))),
            "{path} is not loaded as a credential"
        );
        assert!(
            has(&format!("Environment=NATS_CALLOUT_{setting}=%d/{path}")),
            "NATS_CALLOUT_{setting} does not point at the credential"
        );
    }
    assert!(
        config.tokens.store_path.starts_with("/var/lib/nats-callout"),
        "the store is in StateDirectory"
    );
}

/// The production pair: the service speaks TLS to nats-server (nkey user), cookies are
/// `Secure`, the operations listener stays on loopback; nats-server accepts its file
/// (certificates made here, as an operator would).
#[test]
fn the_production_configurations_load() {
    let config =
        Config::load(&repo().join("deploy/production/callout.toml")).expect("production configuration");
    assert!(config.nats.url.starts_with("tls://"), "{}", config.nats.url);
    assert!(config.nats.tls_ca_file.is_some() && config.nats.nkey_seed_file.is_some());
    assert!(config.nats.password_file.is_none(), "the nkey, not a password");
    assert!(config.http.secure_cookies);
    assert!(
        config.http.admin_listen.starts_with("127.0.0.1:"),
        "{}",
        config.http.admin_listen
    );
    assert!(!config.http.trusted_proxies.is_empty());

    let conf = read("deploy/production/nats-server.conf");
    let dir = tempfile::tempdir().unwrap();
    nats_callout::keys::generate(&dir.path().join("keys"), false).unwrap();
    let certs = crate::support::server::Hardened::make(dir.path());
    let mut text = conf.clone();
    for (from, to) in [
        ("/etc/nats/tls/server.pem", certs.cert.clone()),
        ("/etc/nats/tls/server.key", certs.key.clone()),
        ("/etc/nats/tls/ca.pem", certs.ca.clone()),
    ] {
        assert!(
            text.contains(from),
            "{from} not in the production nats-server.conf"
        );
        text = text.replace(from, &to.display().to_string());
    }
    nats_server_accepts(dir.path(), &text);
}

/// nats-server itself accepts `conf`, written as `dir/nats-server.conf` (`-t`).
fn nats_server_accepts(dir: &Path, conf: &str) {
    let path = dir.join("nats-server.conf");
    std::fs::write(&path, conf).unwrap();
    let out = Command::new(nats_callout::testing::nats_server_bin())
        .args(["-t", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
