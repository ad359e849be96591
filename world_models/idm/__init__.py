"""FM-IDM: the inverse dynamics model that turns video into 7-DoF arm actions; training, evaluation, report."""
