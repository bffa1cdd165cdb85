//! Process groups: membership, leaving on death, zero-copy broadcast.

use std::sync::{Arc, Mutex};

use airssys_rt::{Actor, Archived, Ctx, ManualDriver};

#[derive(rkyv::Archive, rkyv::Serialize)]
struct News {
    headline: String,
    body: Vec<u8>,
}
airssys_rt::message!(News);

/// Records the headline and the address of the body it read.
struct Reader(Arc<Mutex<Vec<(String, usize)>>>);
impl Actor for Reader {
    fn handle_archived(&mut self, ctx: &mut Ctx<Self>, msg: Archived<'_>) {
        match msg.get::<News>() {
            Some(news) => self
                .0
                .lock()
                .unwrap()
                .push((news.headline.to_string(), news.body.as_ptr() as usize)),
            None => ctx.dead_letter(),
        }
    }
}

#[test]
fn join_leave_members_and_death() {
    let d = ManualDriver::new(1);
    let sys = d.system();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let a = sys.spawn(Reader(seen.clone())).unwrap();
    let b = sys.spawn(Reader(seen.clone())).unwrap();
    assert!(sys.join("news", &a.pid()));
    assert!(sys.join("news", &a.pid()), "joining twice is a no-op");
    assert!(sys.join("news", &b.pid()));
    let ids = |g: &str| sys.members(g).iter().map(|p| p.id()).collect::<Vec<_>>();
    assert_eq!(ids("news"), [a.id(), b.id()]);
    assert!(sys.leave("news", &a.pid()));
    assert!(!sys.leave("news", &a.pid()));
    assert_eq!(ids("news"), [b.id()]);
    b.kill();
    d.run_until_idle();
    assert!(ids("news").is_empty(), "a dead actor left its group");
    assert!(!sys.join("news", &b.pid()), "a dead actor cannot join");
    assert!(ids("nobody").is_empty());
}

#[test]
fn broadcast_serializes_once_and_every_member_reads_the_same_bytes() {
    let d = ManualDriver::new(2);
    let sys = d.system();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let readers: Vec<_> = (0..100)
        .map(|_| sys.spawn(Reader(seen.clone())).unwrap())
        .collect();
    for r in &readers {
        sys.join("subscribers", &r.pid());
    }
    readers[0].kill();
    d.run_until_idle();
    let news = News {
        headline: "zero-copy".into(),
        body: vec![7; 10_000],
    };
    assert_eq!(sys.broadcast("subscribers", &news).unwrap(), 99);
    d.run_until_idle();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 99);
    assert!(seen.iter().all(|(h, _)| h == "zero-copy"));
    assert!(
        seen.iter().all(|(_, addr)| *addr == seen[0].1),
        "a member got a copy"
    );
    assert_eq!(sys.broadcast("empty", &news).unwrap(), 0);
}
