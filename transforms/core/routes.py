"""The routes a record can take, by the names every step, writer, count and page uses."""

CLEAN = "clean"
REVIEW = "review"
ERRORS = "errors"
ROUTES = (CLEAN, REVIEW, ERRORS)
DROPPED = "dropped"  # only after a review: samples reviewers dropped (jobs/apply_review.py)
