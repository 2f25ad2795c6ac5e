//! nats-server configurations for the three systems, and starting them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use crate::procs::{Proc, free_port, wait_port};

/// nats-server: the flag, then what the tests use (`NATS_SERVER_BIN`, `.tools/`, `PATH`).
pub fn nats_server_bin(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .unwrap_or_else(nats_callout::testing::nats_server_bin)
}

/// A running nats-server.
pub struct Server {
    pub port: u16,
    pub proc: Proc,
}

impl Server {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }
}

/// Start nats-server with `conf` (which must contain `listen: 127.0.0.1:{port}` from `conf_for`).
pub fn start(
    bin: &Path,
    dir: &Path,
    name: &'static str,
    conf_for: impl Fn(u16) -> String,
) -> anyhow::Result<Server> {
    let mut last = None;
    for _ in 0..5 {
        let port = free_port();
        let conf = dir.join(format!("{name}.conf"));
        std::fs::write(&conf, conf_for(port))?;
        let mut cmd = Command::new(bin);
        cmd.arg("-c")
            .arg(&conf)
            .arg("-l")
            .arg(dir.join(format!("{name}.log")));
        let proc = Proc::spawn(name, cmd, &dir.join(format!("{name}.stderr")))
            .with_context(|| format!("starting {} (make tools installs it)", bin.display()))?;
        match wait_port(port, Duration::from_secs(10)) {
            Ok(()) => return Ok(Server { port, proc }),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("nats-server did not start")))
}

/// The common part: accounts for the callout, the app and the system; the app's users hear
/// the notices the callout's account publishes (as in the configuration `keys` writes).
fn accounts(callout_pw: &str, sys_pw: &str, app_users: &str) -> String {
    accounts_js(callout_pw, sys_pw, app_users, "")
}

/// [`accounts`] with `auth_js` in the callout's account (`jetstream: enabled`).
fn accounts_js(callout_pw: &str, sys_pw: &str, app_users: &str, auth_js: &str) -> String {
    format!(
        r#"accounts {{
  AUTH {{
    {auth_js} users: [ {{ user: callout, password: "{callout_pw}" }} ]
    exports: [ {{ stream: "nats-callout.notice.>" }} ]
  }}
  APP {{ {app_users}
    imports: [ {{ stream: {{ account: AUTH, subject: "nats-callout.notice.>" }} }} ]
  }}
  SYS {{ users: [ {{ user: sys, password: "{sys_pw}" }} ] }}
}}
system_account: SYS
"#
    )
}

/// A server whose clients are authorized by an auth callout (xkey on) within `timeout_s`;
/// with `jetstream` (a store directory), JetStream on for the callout's account.
pub fn callout_conf(
    port: u16,
    issuer: &str,
    xkey: &str,
    callout_pw: &str,
    sys_pw: &str,
    timeout_s: u32,
    jetstream: Option<&Path>,
) -> String {
    let (js, auth_js) = match jetstream {
        Some(dir) => (
            format!("jetstream {{ store_dir: {dir:?} }}\n"),
            "jetstream: enabled,",
        ),
        None => (String::new(), ""),
    };
    format!(
        "listen: 127.0.0.1:{port}\nserver_name: bench_{port}\nmax_control_line: 8KB\n{js}{accounts}{authorization}",
        accounts = accounts_js(callout_pw, sys_pw, "", auth_js),
        authorization = nats_callout::keys::authorization_block(
            issuer,
            Some(xkey),
            &["callout", "sys"],
            u64::from(timeout_s)
        )
    )
}

/// One static user: name, password and the subjects the callout would grant.
pub struct StaticUser {
    pub name: String,
    pub password: String,
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

/// A server with static users (plain passwords: the cheapest static check there is).
pub fn static_conf(port: u16, users: &[StaticUser], callout_pw: &str, sys_pw: &str) -> String {
    let list = |subjects: &[String]| {
        subjects
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut app = String::from("users: [\n");
    for u in users {
        let _ = writeln!(
            app,
            "    {{ user: {:?}, password: {:?}, permissions: {{ publish: {{ allow: [{}] }}, subscribe: {{ allow: [{}] }}, allow_responses: {{ max: 1 }} }} }}",
            u.name,
            u.password,
            list(&u.publish),
            list(&u.subscribe)
        );
    }
    app.push_str("  ]");
    format!(
        "listen: 127.0.0.1:{port}\nserver_name: bench_{port}\nmax_control_line: 8KB\n{}",
        accounts(callout_pw, sys_pw, &app)
    )
}
