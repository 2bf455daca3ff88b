//! The Jupyter notebooks, executed cell by cell with nbclient against a `pdx serve` that
//! this test starts over a data directory populated by `pdx demo`. Each notebook asserts
//! its own key results, so a failed assertion in any cell fails this test.
//!
//! The notebooks need the Python packages pinned in `notebooks/requirements.txt`; the
//! README's test command installs them. `PDX_NB_PYTHON` picks the interpreter
//! (default `python3`). Missing packages fail the test rather than skip it.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PDX: &str = env!("CARGO_BIN_EXE_pdx");
const NOTEBOOKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/notebooks");

/// Run in this order: 02 lists the product that 01 creates.
const ORDER: [&str; 3] = [
    "01_enterprise_developer.ipynb",
    "02_trading_platform.ipynb",
    "03_supervisor_audit.ipynb",
];

const EXECUTE: &str = r#"
import sys, nbformat
from nbclient import NotebookClient
path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": "."}}).execute()
print("ok", path)
"#;

/// Kills the server when the test ends, whichever way it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until_listening(port: u16, server: &mut Server, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        if let Some(status) = server.0.try_wait().unwrap() {
            panic!(
                "pdx serve exited with {status}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "pdx serve did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_notebook_runs_against_a_live_server_and_its_assertions_hold() {
    let python = std::env::var("PDX_NB_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python)
        .args([
            "-c",
            "import nbclient, nbformat, ipykernel, httpx, polars, matplotlib",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot start {python}: {e}"));
    assert!(
        probe.status.success(),
        "the notebooks' packages are missing; run `{python} -m pip install -r notebooks/requirements.txt`:\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let demo = Command::new(PDX)
        .arg("--data-dir")
        .arg(&data)
        .arg("demo")
        .output()
        .unwrap();
    assert!(
        demo.status.success(),
        "pdx demo: {}\n{}",
        String::from_utf8_lossy(&demo.stdout),
        String::from_utf8_lossy(&demo.stderr)
    );

    let port = free_port();
    let log = dir.path().join("serve.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let mut server = Server(
        Command::new(PDX)
            .arg("--data-dir")
            .arg(&data)
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::from(log_file.try_clone().unwrap()))
            .stderr(Stdio::from(log_file))
            .spawn()
            .unwrap(),
    );
    wait_until_listening(port, &mut server, &log);

    for notebook in ORDER {
        let out = Command::new(&python)
            .args(["-c", EXECUTE, notebook])
            .current_dir(NOTEBOOKS)
            .env("PDX_URL", format!("http://127.0.0.1:{port}"))
            .env("PDX_DATA_DIR", &data)
            .env("PDX_BIN", PDX)
            .env("MPLBACKEND", "Agg")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{notebook} failed:\n{}\n{}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("ok {notebook}")),
            "{notebook}: nbclient did not report completion"
        );
    }
}
