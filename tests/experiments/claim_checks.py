"""A check shared by the experiments' tests (imported by name: pytest puts this folder on sys.path)."""

from cnnlab.repeats import find_row, verdict


def assert_claims_select_one_row_each(result, count: int) -> None:
    """Each claim compares two distinct rows of the table in a numeric column; one seed resolves nothing."""
    assert len(result.claims) == count
    for claim in result.claims:
        above, below = find_row(result.rows, claim.above), find_row(result.rows, claim.below)
        assert above is not below and all(isinstance(row[claim.column], float) for row in (above, below))
        assert verdict(claim, result.rows)[0] == "not resolved at n=1"
