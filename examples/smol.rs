//! Hosting actors on a smol executor: `cargo run --release --example smol --features smol`.

use airssys_rt::{Actor, Ctx, Handler};

struct Greeter;
impl Actor for Greeter {}
impl Handler<&'static str> for Greeter {
    type Reply = String;
    fn handle(&mut self, name: &'static str, _: &mut Ctx<Self>) -> String {
        format!("hello, {name}")
    }
}

fn main() {
    let executor: &'static smol::Executor<'static> = Box::leak(Box::new(smol::Executor::new()));
    let driver = airssys_rt::spawn_on_smol(executor, 1);
    let greeter = driver.system().spawn(Greeter).expect("spawn");
    // Run the executor on this thread until our conversation is over.
    let reply = smol::block_on(executor.run(async { greeter.ask("smol").await }));
    println!("{reply:?}");
    assert_eq!(reply, Ok("hello, smol".to_string()));
    driver.stop();
}
