//! `wgtrain sweep --configs FILE` end to end: the sweep runs exactly the file's trials in
//! its order (trial i is entry i, missing fields from one-value flags), and a bad file is
//! refused with exit status 2 naming the file, the entry and the field.

use std::process::{Command, Output};

use serde_json::{Value, json};

fn wgtrain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn sweep_configs_runs_the_files_trials_in_order_and_refuses_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("configs.json");
    std::fs::write(
        &file,
        r#"[{"lr": 0.2, "hidden": [], "epochs": 2},
            {"lr": 0.05, "batch_size": 32, "momentum": 0.5},
            {"lr": 1e8}]"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    let data = std::env::var("MNIST_DIR").expect("set MNIST_DIR to the MNIST files");
    let o = wgtrain(&[
        "sweep",
        "--configs",
        file.to_str().unwrap(),
        "--epochs",
        "1",
        "--hidden",
        "16",
        "--device",
        "cpu",
        "--data",
        &data,
        "--no-download",
        "--train-subset",
        "300",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let trials: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("trials.json")).unwrap()).unwrap();
    let configs: Vec<&Value> = trials
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["config"])
        .collect();
    let ids: Vec<&Value> = trials
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["id"])
        .collect();
    assert_eq!(ids, [0, 1, 2]);
    // Fields left out: weight decay 1e-4, batch 64, momentum 0 (the flags' defaults),
    // hidden [16] and 1 epoch (the flags given).
    assert_eq!(
        configs,
        [
            &json!({"lr": 0.2, "weight_decay": 1e-4, "batch_size": 64, "momentum": 0.0,
                    "hidden": [], "epochs": 2}),
            &json!({"lr": 0.05, "weight_decay": 1e-4, "batch_size": 32, "momentum": 0.5,
                    "hidden": [16], "epochs": 1}),
            &json!({"lr": 1e8, "weight_decay": 1e-4, "batch_size": 64, "momentum": 0.0,
                    "hidden": [16], "epochs": 1}),
        ]
    );
    assert_eq!(trials[0]["history"].as_array().unwrap().len(), 2);
    assert_eq!(trials[2]["status"], "diverged");

    std::fs::write(&file, r#"[{"lr": 0.1}, {"lr": 0.1, "momentum": 1.5}]"#).unwrap();
    let o = wgtrain(&["sweep", "--configs", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for want in [
        file.to_str().unwrap(),
        "entry 1",
        "`momentum` is 1.5",
        "[0, 1)",
    ] {
        assert!(err.contains(want), "{err:?} does not say {want:?}");
    }
    let o = wgtrain(&[
        "sweep",
        "--configs",
        file.to_str().unwrap(),
        "--trials",
        "3",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot be used with"));
}
