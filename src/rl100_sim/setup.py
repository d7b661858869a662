from setuptools import setup

package_name = 'rl100_sim'

setup(
    name=package_name,
    version='0.1.0',
    packages=[package_name],
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='rl100 maintainers',
    maintainer_email='maintainers@rl100.dev',
    description='MuJoCo simulated robot behind franka_ros2 / realsense-ros topic names.',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'sim_robot = rl100_sim.sim_robot_node:main',
        ],
    },
)
