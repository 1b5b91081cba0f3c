"""A run's health, watched from its events (watchdog): the alerts the trainer writes after the events they come
from, and the stall the supervisor sees from outside. Standard library only: both processes import it."""
