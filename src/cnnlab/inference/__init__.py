"""Running a trained model, with nothing of training in it: the precision policy (`precision`), batches from
uint8 images (`batches`), evaluation over a split (`evaluation`), and a run directory's model rebuilt for
evaluate and predict (`model`, `prediction`). Training imports these; they never import the trainer."""
