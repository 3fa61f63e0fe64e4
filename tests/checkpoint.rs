//! Checkpoints as files: two identical runs write identical bytes.

use std::process::Command;

/// Regression (issue 10, item 4): the safetensors metadata was built from a `HashMap`, so
/// two same-seed runs wrote the same tensors under headers in different orders. Two
/// separate processes (each with its own hash seed) must now write the same file, byte for
/// byte, and the file must still load with the weights training reached.
#[test]
fn same_seed_runs_write_identical_checkpoint_files() {
    let dir = std::env::var("MNIST_DIR")
        .expect("set MNIST_DIR to the directory with the four MNIST files");
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        let path = tmp.path().join(name);
        let o = Command::new(env!("CARGO_BIN_EXE_wgtrain"))
            .args([
                "train",
                "--device",
                "cpu",
                "--data",
                &dir,
                "--train-subset",
                "2000",
                "--epochs",
                "1",
                "--hidden",
                "16",
                "--normalize",
                "--quiet",
                "--save",
            ])
            .arg(&path)
            .output()
            .expect("the binary runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read(&path).unwrap()
    };
    let (a, b) = (run("a.safetensors"), run("b.safetensors"));
    assert_eq!(a.len(), b.len(), "file sizes differ");
    if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
        panic!(
            "the checkpoints differ from byte {i}: {:?} vs {:?}",
            String::from_utf8_lossy(&a[i.saturating_sub(20)..(i + 40).min(a.len())]),
            String::from_utf8_lossy(&b[i.saturating_sub(20)..(i + 40).min(b.len())])
        );
    }
    let ck = wgtrain::checkpoint::load(&tmp.path().join("a.safetensors")).unwrap();
    assert_eq!(ck.spec.to_string(), "784-16-10");
    assert_eq!(ck.normalization, Some(wgtrain::model::Normalization::MNIST));
    // Trained, not the initialisation.
    assert_ne!(ck.params, ck.spec.init(1));
}
