//! Hosting actors on a tokio runtime: `cargo run --release --example tokio --features tokio`.
//!
//! The actors run inside tokio tasks (worker futures), next to the application's own async
//! code, which talks to them with `ask(..).await`.

use airssys_rt::{Actor, ActorHandle, AsyncHandler, Ctx, Handler};

/// A key-value store.
#[derive(Default)]
struct Store(std::collections::HashMap<String, String>);
impl Actor for Store {}

struct Put(String, String);
impl Handler<Put> for Store {
    type Reply = Option<String>;
    fn handle(&mut self, Put(k, v): Put, _: &mut Ctx<Self>) -> Option<String> {
        self.0.insert(k, v)
    }
}

/// A lookup that awaits inside the handler (here a tokio timer; think: a database call).
struct SlowGet(String);
impl AsyncHandler<SlowGet> for Store {
    type Reply = Option<String>;
    async fn handle(&mut self, SlowGet(k): SlowGet, _me: ActorHandle<Self>) -> Option<String> {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        self.0.get(&k).cloned()
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // Two worker futures on the current runtime drive every actor of this system.
    let driver = airssys_rt::spawn_on_tokio(&tokio::runtime::Handle::current(), 2);
    let store = driver.system().spawn(Store::default()).expect("spawn");

    let previous = store.ask(Put("lang".into(), "rust".into())).await;
    println!("put lang=rust (previous: {previous:?})");
    let got = store.ask_async(SlowGet("lang".into())).await;
    println!("slow get lang = {got:?}");
    assert_eq!(got, Ok(Some("rust".to_string())));
    driver.stop();
}
