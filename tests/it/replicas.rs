//! Two `meshql serve` processes on one warehouse with one signing key, as replicas behind a load
//! balancer: a ticket or prepared-statement handle one hands out runs on the other, and the
//! warehouse's background work (here a node scheduled every second) runs in exactly one of them —
//! the other taking it over when the first is killed.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use arrow_flight::sql::{
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any,
    CommandPreparedStatementQuery, ProstMessageExt,
};
use arrow_flight::{Action, FlightDescriptor};
use futures::TryStreamExt;
use prost::Message;

use crate::common::{build_all, client_as, demo_mesh, edit, engine, runtime};

/// A `meshql serve` child process and the lines it prints.
struct Replica {
    child: Child,
    addr: SocketAddr,
    lines: mpsc::Receiver<String>,
}

impl Replica {
    fn start(dir: &Path) -> Replica {
        let mut child = Command::new(env!("CARGO_BIN_EXE_meshql"))
            .current_dir(dir)
            .args(["serve", "--addr", "127.0.0.1:0", "--no-build"])
            .env("RUST_LOG", "warn,meshql::pipeline::schedule=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("meshql serve");
        let (tx, lines) = mpsc::channel();
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let mut replica = Replica {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            lines,
        };
        let line = replica
            .wait_for(Duration::from_secs(60), |l| l.contains(" on grpc://"))
            .expect("the server's banner");
        let at = line.find("grpc://").unwrap() + "grpc://".len();
        replica.addr = line[at..].trim().parse().expect("an address");
        replica
    }

    /// The first line printed from now on within `limit` that `wanted` accepts.
    fn wait_for(&self, limit: Duration, wanted: impl Fn(&str) -> bool) -> Option<String> {
        let until = Instant::now() + limit;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// How many scheduled runs it has ended since last asked (without waiting).
    fn runs_ended(&self) -> usize {
        self.lines
            .try_iter()
            .filter(|l| l.contains("scheduled run ended"))
            .count()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The rows `client` fetches with the ticket of `info`.
async fn rows(client: &mut crate::common::Client, info: &arrow_flight::FlightInfo) -> usize {
    let ticket = info.endpoint[0].ticket.clone().expect("a ticket");
    let batches: Vec<_> = client
        .do_get(ticket)
        .await
        .expect("fetched")
        .try_collect()
        .await
        .expect("rows");
    batches.iter().map(|b| b.num_rows()).sum()
}

#[test]
fn replicas_share_tickets_and_handles_and_one_runs_the_schedules() {
    let dir = demo_mesh();
    edit(
        &dir.path().join("catalog/mesh.yaml"),
        "server:\n",
        "server:\n  signing_key: one-key-for-every-replica\n  lease_secs: 2\n",
    );
    let node = dir.path().join("sql/finance/gold/revenue_vs_target.sql");
    let sql = std::fs::read_to_string(&node).unwrap();
    std::fs::write(&node, format!("-- @schedule: * * * * * *\n{sql}")).unwrap();
    let rt = runtime();
    rt.block_on(build_all(&engine(dir.path())));

    let a = Replica::start(dir.path());
    let b = Replica::start(dir.path());

    rt.block_on(async {
        let mut on_a = client_as(a.addr, "admin").await;
        let mut on_b = client_as(b.addr, "admin").await;

        // A statement's ticket from A is honoured by B.
        let info = on_a
            .execute("SELECT 42 AS answer".into(), None)
            .await
            .unwrap();
        assert_eq!(rows(&mut on_b, &info).await, 1);

        // So is a prepared statement's handle.
        let request = ActionCreatePreparedStatementRequest {
            query: "SELECT region FROM finance.gold.revenue_vs_target LIMIT 2".into(),
            transaction_id: None,
        };
        let action = Action::new("CreatePreparedStatement", request.as_any().encode_to_vec());
        let result = on_a
            .do_action(action)
            .await
            .unwrap()
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
        let created: ActionCreatePreparedStatementResult = Any::decode(&*result[0].body)
            .unwrap()
            .unpack()
            .unwrap()
            .unwrap();
        let command = CommandPreparedStatementQuery {
            prepared_statement_handle: created.prepared_statement_handle,
        };
        let mut request =
            tonic::Request::new(FlightDescriptor::new_cmd(command.as_any().encode_to_vec()));
        let bearer = format!("Bearer {}", on_b.token().unwrap());
        request
            .metadata_mut()
            .insert("authorization", bearer.parse().unwrap());
        let info = on_b
            .inner_mut()
            .get_flight_info(request)
            .await
            .expect("B plans A's prepared statement")
            .into_inner();
        assert_eq!(rows(&mut on_b, &info).await, 2);
    });

    // The node runs every second in one replica only.
    std::thread::sleep(Duration::from_secs(6));
    let (ran_a, ran_b) = (a.runs_ended(), b.runs_ended());
    assert!(
        (ran_a >= 2 && ran_b == 0) || (ran_b >= 2 && ran_a == 0),
        "scheduled runs ended: {ran_a} in A, {ran_b} in B"
    );

    // Killed without a chance to give the lease up, the holder's work moves to the other
    // within the lease's term (2 s) and a tick.
    let (mut holder, other) = if ran_a > 0 { (a, b) } else { (b, a) };
    holder.child.kill().unwrap(); // SIGKILL
    holder.child.wait().unwrap();
    let killed = Instant::now();
    other
        .wait_for(Duration::from_secs(20), |l| {
            l.contains("scheduled run ended")
        })
        .expect("the other replica takes the schedules over");
    assert!(
        killed.elapsed() < Duration::from_secs(10),
        "{:?}",
        killed.elapsed()
    );
}
