//! Dashboard rows of members trained as Slurm jobs show the job id and
//! Slurm's state; the detail pane names job, node and state.

use crate::support;

use esr_ea::engine::Event;
use esr_ea::search::Status;
use esr_ea::tui::Mode;
use support::*;

#[test]
fn rows_show_slurm_job_ids_and_states() {
    let mut events = mid_run(&recorded());
    let mut app = app_from(&events, Mode::InProcess);
    let running = select_training(&mut app);
    let queued = app
        .view
        .population
        .iter()
        .find(|m| m.status == Status::Pending && m.id != running)
        .expect("a queued member")
        .id;
    events.extend([
        Event::JobState {
            id: running,
            job: "4242".into(),
            state: "RUNNING".into(),
            node: "gpu07".into(),
            waited: 3.5,
        },
        Event::Started {
            id: queued,
            device: "slurm job 4243".into(),
            steps: 4,
        },
        Event::JobState {
            id: queued,
            job: "4243".into(),
            state: "PENDING".into(),
            node: String::new(),
            waited: 0.5,
        },
    ]);
    let mut app = app_from(&events, Mode::InProcess);
    select_training(&mut app);
    let index = app
        .view
        .population
        .iter()
        .position(|m| m.id == running)
        .unwrap();
    app.pop_selected = index;
    let screen = text(&render(&app, 120, 32));
    assert!(screen.contains("R 4242 50%"), "running job row:\n{screen}");
    assert!(screen.contains("PD 4243"), "pending job row:\n{screen}");
    assert!(
        screen.contains("slurm job 4242 on gpu07 (RUNNING)"),
        "detail pane:\n{screen}"
    );
}
