"""Quality gates, promotion (candidate -> staging -> production) and rollback for the lab model."""
