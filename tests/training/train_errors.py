"""A helper of the device and distributed tests: a tiny `cnnlab train` that must stop with one error line."""

from cnnlab.cli import main


def one_line_error(capsys, *argv) -> str:
    """Run `cnnlab train lenet5` (600 digits, 1 epoch, quiet) with `argv` in-process; assert exit code 2 and one
    `cnnlab: error:` line on stderr, and return that line."""
    code = main(
        ["train", "lenet5", "--train-subset", "600", "--epochs", "1", "--threads", "1", "--quiet", *map(str, argv)]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("cnnlab: error: "), err
    return err
