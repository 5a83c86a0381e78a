"""The simulated streaming service: users, catalogue, metadata API and traffic, with a known ground truth.

It talks to the platform only through Kafka (course-format log lines on `movielog`) and HTTP
(its own metadata API; the platform's `GET /recommend/<userid>` in closed loop), and imports
nothing of ours but `events`. See docs/simulator.md for the model and the CLI.
"""
