"""The job queue's use cases: submit and watch jobs, process one image, reports, headless batches, executors."""
